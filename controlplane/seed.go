package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
)

// Federation is a seed file: members, systems with assessments, and datasets
// to publish. examples/federation.json is the one `make run` loads.
type Federation struct {
	Members  []catalog.Member `json:"members"`
	Systems  []SeedSystem     `json:"systems"`
	Datasets []SeedDataset    `json:"datasets"`
}

// SeedSystem is a system and, optionally, an assessment valid for a number
// of days from the seeding (fixed dates in an example would lapse).
type SeedSystem struct {
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	SecurityLevel int             `json:"securityLevel"`
	Assessment    *SeedAssessment `json:"assessment,omitempty"`
}

// SeedAssessment is an assessment with a relative validity.
type SeedAssessment struct {
	Level        int    `json:"level"`
	AssessedBy   string `json:"assessedBy"`
	Reference    string `json:"reference"`
	ValidForDays int    `json:"validForDays"`
}

// SeedDataset names a document file relative to the seed file.
type SeedDataset struct {
	System   string `json:"system"`
	Code     string `json:"code,omitempty"`
	Document string `json:"document"`
}

// SeedIfEmpty loads the federation file into a catalog that has no member
// yet, acting as the platform operator. It reports whether it seeded.
func SeedIfEmpty(ctx context.Context, svc *service.Service, file string) (bool, error) {
	members, err := svc.Members(ctx)
	if err != nil {
		return false, fmt.Errorf("seed: %w", err)
	}
	if len(members) > 0 {
		return false, nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return false, fmt.Errorf("seed: %w", err)
	}
	var fed Federation
	if err := json.Unmarshal(raw, &fed); err != nil {
		return false, fmt.Errorf("seed %s: %w", file, err)
	}
	operator := auth.Principal{TokenID: "seed", Name: "first-start seeding", Role: catalog.RolePlatformAdmin}
	for _, m := range fed.Members {
		if _, err := svc.AddMember(ctx, operator, m); err != nil {
			return false, fmt.Errorf("seed %s: %w", file, err)
		}
	}
	for _, s := range fed.Systems {
		if _, err := svc.AddSystem(ctx, operator, catalog.System{ID: s.ID, Name: s.Name, SecurityLevel: s.SecurityLevel}); err != nil {
			return false, fmt.Errorf("seed %s: %w", file, err)
		}
		if a := s.Assessment; a != nil {
			_, err := svc.Assess(ctx, operator, s.ID, catalog.Assessment{
				Level: a.Level, AssessedBy: a.AssessedBy, Reference: a.Reference,
				ValidUntil: svc.Now().Add(time.Duration(a.ValidForDays) * 24 * time.Hour),
			})
			if err != nil {
				return false, fmt.Errorf("seed %s: %w", file, err)
			}
		}
	}
	for _, d := range fed.Datasets {
		doc, err := os.ReadFile(filepath.Join(filepath.Dir(file), d.Document))
		if err != nil {
			return false, fmt.Errorf("seed %s: %w", file, err)
		}
		if _, err := svc.Publish(ctx, operator, service.PublishInput{System: d.System, Code: d.Code, Document: doc}); err != nil {
			return false, fmt.Errorf("seed %s: dataset %s: %w", file, d.Document, err)
		}
	}
	return true, nil
}
