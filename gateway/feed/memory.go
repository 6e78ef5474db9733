package feed

import "github.com/twmb/franz-go/pkg/kgo"

// laneMemory is a lane's record memory, one per routing worker, kept from
// one batch to the next.
type laneMemory struct {
	workers []recordMemory
	// free: the client has finished with every record written in workers,
	// so their memory may be written again.
	free bool
}

// begin returns the memory for a batch routed by n workers: the last
// batch's, emptied, when the client is done with all of its records
// (reused); new memory otherwise (the old stays with records the client
// may still read, and is collected once it no longer does).
func (m *laneMemory) begin(n int) (mems []recordMemory, reused bool) {
	reused = m.free && len(m.workers) == n
	if reused {
		for i := range m.workers {
			m.workers[i].reset()
		}
	} else {
		m.workers = make([]recordMemory, n)
	}
	m.free = false
	return m.workers, reused
}

// finished says, once a batch's transaction has ended, whether every
// record it produced is finished (its promise called): kgo reads a record
// until then.
func (m *laneMemory) finished(all bool) { m.free = all }

// recordMemory is where one routing worker writes the consumer records of
// a batch: their bytes (values, keys, header values), the records, their
// headers and the pointers the client is handed, each carved from a block
// one after another. A lane keeps it from one batch to the next, so a
// steady stream of batches allocates none of it; reset reuses it only once
// the client has finished with every record of the previous batch (see
// lane.reuse).
type recordMemory struct {
	bytes   carver[byte]
	records carver[kgo.Record]
	headers carver[kgo.RecordHeader]
	out     carver[*kgo.Record]
}

// reset makes the memory's blocks free for a new batch. Only when no
// record carved from it is still read by anyone.
func (m *recordMemory) reset() {
	m.bytes.reset()
	m.records.reset()
	m.headers.reset()
	m.out.reset()
}

// carver hands out consecutive pieces of a block. A piece is never moved:
// when the block is full, a new one (twice the size) is started and the
// old stays with the pieces carved from it.
type carver[T any] struct{ block []T }

// take returns a piece of n elements, zero unless reused (the caller
// writes every element it uses), capped so that appending to it cannot
// reach the next piece.
func (c *carver[T]) take(n int) []T {
	if len(c.block)+n > cap(c.block) {
		c.block = make([]T, 0, max(2*cap(c.block), n, 64))
	}
	from := len(c.block)
	c.block = c.block[:from+n]
	return c.block[from : from+n : from+n]
}

// reset frees the block for reuse, dropping what its pieces point to.
func (c *carver[T]) reset() {
	clear(c.block)
	c.block = c.block[:0]
}
