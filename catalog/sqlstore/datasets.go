package sqlstore

import (
	"context"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
)

// datasetCols leaves out the document, which only GetDataset reads.
const datasetCols = `system_id, code, version, title, description, record_schema,
	min_consumer_level, digest, fields, published_at, published_by`

func scanDataset(r rowScanner, extra ...any) (catalog.Dataset, error) {
	var d catalog.Dataset
	dest := []any{&d.System, &d.Code, &d.Version, &d.Title, &d.Description, &d.RecordSchema,
		&d.MinConsumerLevel, &d.Digest, scanJSON(&d.Fields), scanTime(&d.PublishedAt), &d.PublishedBy}
	err := r.Scan(append(dest, extra...)...)
	return d, err
}

func scanDatasetRow(r rowScanner) (catalog.Dataset, error) { return scanDataset(r) }

// GetDataset returns one version of a dataset with its document; version 0
// means the latest. ErrNotFound if there is no such dataset or version.
func (r reader) GetDataset(ctx context.Context, system, code string, version int) (*catalog.Dataset, error) {
	query := "SELECT " + datasetCols + ", document FROM datasets WHERE system_id = $1 AND code = $2"
	args := []any{system, code}
	if version == 0 {
		query += " ORDER BY version DESC LIMIT 1"
	} else {
		query += " AND version = $3"
		args = append(args, version)
	}
	var doc []byte
	d, err := scanDataset(r.q.QueryRowContext(ctx, query, args...), &doc)
	if err != nil {
		return nil, fmt.Errorf("get dataset %s/%s version %d: %w", system, code, version, notFoundErr(err))
	}
	d.Document = doc
	return &d, nil
}

// ListDatasets returns the latest version of each dataset, without its
// document, ordered by system and code.
func (r reader) ListDatasets(ctx context.Context, f catalog.DatasetFilter) ([]catalog.Dataset, error) {
	var w where
	w.add("d.version = (SELECT MAX(x.version) FROM datasets x WHERE x.system_id = d.system_id AND x.code = d.code)")
	w.eq("d.member", f.Member)
	w.eq("d.system_id", f.System)
	ds, err := queryList(ctx, r.q, scanDatasetRow,
		"SELECT "+datasetCols+" FROM datasets d"+w.sql()+" ORDER BY d.system_id, d.code", w.args...)
	if err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	return ds, nil
}

// ListDatasetVersions returns every version of one dataset, oldest first,
// without documents (empty when the dataset does not exist).
func (r reader) ListDatasetVersions(ctx context.Context, system, code string) ([]catalog.Dataset, error) {
	ds, err := queryList(ctx, r.q, scanDatasetRow,
		"SELECT "+datasetCols+" FROM datasets WHERE system_id = $1 AND code = $2 ORDER BY version", system, code)
	if err != nil {
		return nil, fmt.Errorf("list versions of dataset %s/%s: %w", system, code, err)
	}
	return ds, nil
}

// InsertDataset stores a new version: d.Version must be the latest stored
// version plus one (1 for a new dataset), else ErrConflict. ErrNotFound if
// the provider system does not exist.
func (t *tx) InsertDataset(ctx context.Context, d *catalog.Dataset) error {
	err := t.write(ctx, func() error {
		var latest int
		if err := t.q.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM datasets WHERE system_id = $1 AND code = $2",
			d.System, d.Code).Scan(&latest); err != nil {
			return err
		}
		if d.Version != latest+1 {
			return fmt.Errorf("%w: version %d does not follow the latest stored version %d", catalog.ErrConflict, d.Version, latest)
		}
		fields, err := jsonArg(d.Fields)
		if err != nil {
			return err
		}
		_, err = t.q.ExecContext(ctx, `INSERT INTO datasets
			(system_id, code, version, member, title, description, record_schema,
			 min_consumer_level, digest, fields, document, published_at, published_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			d.System, d.Code, d.Version, memberOf(d.System), d.Title, d.Description, d.RecordSchema,
			d.MinConsumerLevel, d.Digest, fields, d.Document, t.d.time(d.PublishedAt), d.PublishedBy)
		return t.d.insertErr(err, "system "+d.System+" does not exist")
	})
	if err != nil {
		return fmt.Errorf("insert dataset %s/%s version %d: %w", d.System, d.Code, d.Version, err)
	}
	return nil
}
