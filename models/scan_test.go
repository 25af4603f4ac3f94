package models

import (
	"context"
	"reflect"
	"testing"

	"gorm.io/gorm"
)

// column knows every column GORM maps for CloudCredential, and points at
// the field GORM would fill: a field added to the model without a case in
// column fails here, not in production (where the listing would fall back
// to GORM's scan).
func TestColumnCoversTheSchema(t *testing.T) {
	db, _, _ := openTestDB(t)
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(&CloudCredential{}); err != nil {
		t.Fatal(err)
	}
	var c CloudCredential
	for _, f := range stmt.Schema.Fields {
		if f.DBName == "" {
			continue
		}
		want := f.ReflectValueOf(context.Background(), reflect.ValueOf(&c).Elem()).Addr().Interface()
		if got := c.column(f.DBName); got != want {
			t.Errorf("column(%q) = %p (%T), want field %s at %p", f.DBName, got, got, f.Name, want)
		}
	}
}

// A Find into []*CloudCredential (the typed scan) and one into
// []CloudCredential (GORM's scan) read the same credentials: every field,
// the opened key and its status included.
func TestTypedScanMatchesGORM(t *testing.T) {
	db, _, owner := openTestDB(t)
	custom := "https://llm.example.com/openai"
	for _, c := range []*CloudCredential{
		newCred(owner, "plain", testKey),
		{UserID: owner, Name: "custom url", BackendType: BackendOpenAICompatible, APIType: APIOpenAI, BaseURL: &custom, APIKey: testKey + "2"},
		newCred(owner, "no url", testKey+"3"),
		newCred(owner, "tampered", testKey+"4"),
	} {
		if err := db.Create(c).Error; err != nil {
			t.Fatal(err)
		}
	}
	db.Exec("UPDATE cloud_credentials SET base_url = NULL WHERE name = 'no url'")
	db.Exec("UPDATE cloud_credentials SET api_key_jwe = 'gAAAAA-not-a-jwe' WHERE name = 'tampered'")

	for _, q := range []struct {
		name string
		q    func() *gorm.DB
	}{
		{"every column", func() *gorm.DB { return db.Order("name") }},
		{"the listing's columns", func() *gorm.DB { return db.Select(listColumns).Order("name") }},
	} {
		t.Run(q.name, func(t *testing.T) {
			var typed []*CloudCredential
			var generic []CloudCredential
			if err := q.q().Find(&typed).Error; err != nil {
				t.Fatal(err)
			}
			res := q.q().Find(&generic)
			if res.Error != nil {
				t.Fatal(res.Error)
			}
			if len(typed) != 4 || len(generic) != 4 || res.RowsAffected != 4 {
				t.Fatalf("found %d and %d rows", len(typed), len(generic))
			}
			for i := range typed {
				if !reflect.DeepEqual(*typed[i], generic[i]) {
					t.Errorf("row %d:\ntyped scan %+v\nGORM scan  %+v", i, *typed[i], generic[i])
				}
			}
			if typed[3].KeyStatus() != KeyNeedsReentry || typed[0].APIKey == "" {
				t.Error("the keys were not opened after the typed scan")
			}
		})
	}
}

// A column that is no field of the model leaves the rows to GORM's scan.
func TestTypedScanLeavesOtherColumnsToGORM(t *testing.T) {
	db, _, owner := openTestDB(t)
	if err := db.Create(newCred(owner, "a", testKey)).Error; err != nil {
		t.Fatal(err)
	}
	var typed []*CloudCredential
	var generic []CloudCredential
	res := db.Select("id", "name", "api_key_jwe", "1 AS extra").Find(&typed)
	if err := db.Select("id", "name", "api_key_jwe", "1 AS extra").Find(&generic).Error; err != nil || res.Error != nil {
		t.Fatal(err, res.Error)
	}
	if len(typed) != 1 || res.RowsAffected != 1 || !reflect.DeepEqual(*typed[0], generic[0]) || typed[0].APIKey != testKey {
		t.Fatalf("%d rows: %+v, GORM's scan: %+v", len(typed), typed, generic)
	}
}
