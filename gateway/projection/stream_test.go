package projection

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// records is a reader of a JSON array of n synthetic citizen records of
// about size bytes each, made one record at a time as it is read, so the
// test itself holds no more than one record.
type records struct {
	n, size int
	i       int
	buf     bytes.Buffer
	done    bool
}

func (r *records) Read(p []byte) (int, error) {
	for r.buf.Len() == 0 {
		switch {
		case r.done:
			return 0, io.EOF
		case r.i == 0 && r.n > 0:
			r.buf.WriteByte('[')
		case r.i == r.n:
			if r.n == 0 {
				r.buf.WriteByte('[')
			}
			r.buf.WriteByte(']')
			r.done = true
			continue
		default:
			r.buf.WriteByte(',')
		}
		if r.i < r.n {
			r.record(r.i)
			r.i++
		}
	}
	return r.buf.Read(p)
}

func (r *records) record(i int) {
	b := &r.buf
	start := b.Len()
	fmt.Fprintf(b, `{"personalId":"0792%08d","fullName":"Nguyễn Văn %d","dateOfBirth":"2003-04-05","sex":"male",`, i, i)
	fmt.Fprintf(b, `"permanentResidence":{"provinceCode":"79","wardCode":"26734","addressLine":"Số %d Lê Lợi"},`, i)
	fmt.Fprintf(b, `"relatives":[{"relationship":"Con","personalId":"0792%08d","fullName":"Nguyễn Thị %d"}],"note":"`, i+1, i)
	for b.Len()-start < r.size-2 {
		b.WriteByte('x')
	}
	b.WriteString(`"}`)
}

// countWriter counts what it is given and keeps only its last bytes.
type countWriter struct {
	n    int64
	tail []byte
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	w.tail = append(w.tail, p[max(0, len(p)-64):]...)
	w.tail = w.tail[max(0, len(w.tail)-64):]
	return len(p), nil
}

// TestProjectStreamsLargeArrays projects 50,000 records (about 50 MB) with
// validation and a row filter and checks that the heap never grows anywhere
// near the size of the input: Project holds one record at a time.
func TestProjectStreamsLargeArrays(t *testing.T) {
	n, size := 50000, 1000
	if testing.Short() {
		n = 5000
	}
	p, err := NewPlan([]string{"fullName", "permanentResidence.provinceCode", "relatives.fullName", "personalId"},
		map[string]catalog.Mask{"personalId": catalog.MaskHash}, testMasker(t))
	if err != nil {
		t.Fatal(err)
	}
	v := populationValidator(t)

	// A low GC target makes the heap's size follow what is live rather
	// than how much garbage the collector lets pile up.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})

	src := &records{n: n, size: size}
	dst := &countWriter{}
	kept := 0
	st, err := p.Project(dst, src, Options{
		MaxBytes: -1,
		Validate: v.Validate,
		Keep: func(rec any) bool {
			keep := rec.(map[string]any)["fullName"].(string) != "Nguyễn Văn 7"
			if keep {
				kept++
			}
			return keep
		},
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != n-1 || st.Filtered != 1 || kept != n-1 || st.Masked != n-1 {
		t.Fatalf("stats %+v", st)
	}
	if st.BytesIn < int64(n*size) || st.BytesOut != dst.n || !bytes.HasSuffix(dst.tail, []byte(`"}]}]`)) {
		t.Fatalf("in %d, out %d (counted %d), ends %q", st.BytesIn, st.BytesOut, dst.n, dst.tail)
	}
	grown := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("input %d MB, output %d MB, heap grew by at most %.1f MB", st.BytesIn>>20, st.BytesOut>>20, float64(grown)/(1<<20))
	if grown > st.BytesIn/20 {
		t.Fatalf("the heap grew by %d bytes for %d bytes of input: the array is held in memory", grown, st.BytesIn)
	}
}

// TestProjectLargeArrayOutput checks the streamed output of a large array
// record by record against encoding/json.
func TestProjectLargeArrayOutput(t *testing.T) {
	p, err := NewPlan([]string{"fullName", "permanentResidence.provinceCode"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := p.Project(&out, &records{n: 2000, size: 300}, Options{}); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2000 {
		t.Fatalf("%d records", len(got))
	}
	for i, r := range got {
		want := fmt.Sprintf(`map[fullName:Nguyễn Văn %d permanentResidence:map[provinceCode:79]]`, i)
		if s := fmt.Sprint(r); s != want {
			t.Fatalf("record %d = %s", i, s)
		}
	}
	out.Reset()
	if _, err := p.Project(&out, &records{n: 0}, Options{}); err != nil || out.String() != "[]" {
		t.Fatalf("empty: %q %v", out.String(), err)
	}
}
