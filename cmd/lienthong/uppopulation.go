package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lienthong/lienthong/adapters/synthetic"
)

// upSeed is the seed of the synthetic citizens: the same data set on every
// machine, so the README's commands name citizens that exist.
const upSeed = 2026

// upCitizensTable is the PostgreSQL table of the population database.
const upCitizensTable = "lienthong_citizens"

// population is the Ministry of Public Security's national population
// database as `up` runs it: synthetic citizens in a SQLite file of the data
// directory served over REST on loopback, or a table in PostgreSQL read by
// the gateway's PostgreSQL adapter.
type population struct {
	sqlite *synthetic.SQLiteStore
	pool   *pgxpool.Pool
	// count is how many citizens it holds; created is whether this start
	// generated them.
	count   int
	seed    int64
	created bool
	where   string
	// sample is the citizen the printed commands read; inHanoi and
	// elsewhere are residents inside and outside the LGSP's row scope.
	sample, inHanoi, elsewhere synthetic.Citizen
	// mothers and elders are citizens the synthetic birth and death
	// registrations name.
	mothers, elders []synthetic.Citizen
	server          *http.Server
	serverDone      chan struct{}
}

type populationResult struct {
	pop *population
	err error
}

// openPopulation opens the population database, generating it first when
// this data directory (or PostgreSQL database) holds none.
func openPopulation(ctx context.Context, o upOptions, log *slog.Logger) populationResult {
	p := &population{}
	if err := p.open(ctx, o, log); err != nil {
		p.close()
		return populationResult{err: fmt.Errorf("population database: %w", err)}
	}
	return populationResult{pop: p}
}

func (p *population) open(ctx context.Context, o upOptions, log *slog.Logger) error {
	began := time.Now()
	if o.populationDSN == "" {
		path := filepath.Join(o.dataDir, "population.sqlite")
		st, created, err := synthetic.OpenSQLite(ctx, path, o.citizens, upSeed)
		if err != nil {
			return err
		}
		p.sqlite, p.count, p.seed, p.created, p.where = st, st.Count, st.Seed, created, "SQLite "+path
	} else {
		pool, err := pgxpool.New(ctx, o.populationDSN)
		if err != nil {
			return err
		}
		p.pool, p.seed, p.where = pool, upSeed, "PostgreSQL table "+upCitizensTable
		var exists bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", upCitizensTable).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if err := synthetic.LoadPostgres(ctx, pool, upCitizensTable, synthetic.Citizens(o.citizens, upSeed)); err != nil {
				return err
			}
			p.created = true
		}
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+upCitizensTable).Scan(&p.count); err != nil {
			return err
		}
	}
	log.Info("population database open", "citizens", p.count, "generated", p.created, "ms", time.Since(began).Milliseconds())
	return p.pickSamples()
}

// pickSamples finds, among the first citizens the generator makes (the same
// whichever store holds them), the ones the printed commands and the
// synthetic registrations name.
func (p *population) pickSamples() error {
	people := synthetic.Citizens(min(p.count, 2000), p.seed)
	if len(people) == 0 {
		return errors.New("it holds no citizens")
	}
	p.sample = people[0]
	var haveIn, haveOut bool
	for _, c := range people {
		alive := c.DateOfDeath == nil
		switch {
		case !haveIn && alive && c.PermanentResidence.ProvinceCode == "01":
			p.inHanoi, haveIn = c, true
		case !haveOut && alive && c.PermanentResidence.ProvinceCode != "01":
			p.elsewhere, haveOut = c, true
		}
		age := 2026 - atoiYear(c.DateOfBirth)
		if alive && c.Sex == synthetic.Female && age >= 20 && age <= 42 {
			p.mothers = append(p.mothers, c)
		}
		if alive && age >= 70 {
			p.elders = append(p.elders, c)
		}
	}
	// A small database (tests give a few dozen citizens) may lack one of
	// them: the commands then name the first citizen instead.
	if !haveIn {
		p.inHanoi = p.sample
	}
	if !haveOut {
		p.elsewhere = p.sample
	}
	if len(p.mothers) == 0 {
		p.mothers = people[:1]
	}
	if len(p.elders) == 0 {
		p.elders = people[:1]
	}
	return nil
}

// atoiYear is the year of a YYYY-MM-DD date.
func atoiYear(date string) int {
	y := 0
	for i := 0; i < 4 && i < len(date); i++ {
		y = y*10 + int(date[i]-'0')
	}
	return y
}

// serve starts the REST backend of a SQLite population database on ln
// (bound by bindListeners), which it closes when it stops.
func (p *population) serve(ln net.Listener, errc chan<- error, stack *stopStack) error {
	if p.sqlite == nil {
		if ln != nil {
			_ = ln.Close()
		}
		return nil
	}
	if ln == nil {
		return errors.New("population backend: no listener bound")
	}
	p.server = &http.Server{Handler: p.sqlite.Handler(), ReadHeaderTimeout: 5 * time.Second}
	p.serverDone = make(chan struct{})
	go func() {
		defer close(p.serverDone)
		if err := p.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("population backend: %w", err)
		}
	}()
	stack.push(func() { p.server.Close(); <-p.serverDone })
	return nil
}

// backend is the gateway's backend configuration for the population dataset.
func (p *population) backend(o upOptions) map[string]any {
	b := map[string]any{"recordPath": "citizens/{id}", "subjectField": "personalId"}
	if p.pool != nil {
		m := synthetic.CitizenMapping(upCitizensTable)
		b["postgres"] = map[string]any{"dsn": o.populationDSN, "table": m.Table, "key": m.Key, "listPath": m.ListPath, "columns": m.Columns}
	} else {
		b["rest"] = map[string]string{"baseUrl": "http://" + o.backend}
	}
	return b
}

// close closes the database.
func (p *population) close() {
	if p.sqlite != nil {
		p.sqlite.Close()
	}
	if p.pool != nil {
		p.pool.Close()
	}
}
