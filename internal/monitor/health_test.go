package monitor

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestNextHealth(t *testing.T) {
	c := withHealthDefaults(HealthConfig{Retries: 2, StartPeriod: time.Minute})
	fail := HealthLog{ExitCode: 1, Output: "no"}
	ok := HealthLog{ExitCode: 0, Output: "yes"}
	h := Health{Status: HealthStarting}
	h = nextHealth(h, c, fail, true)
	if h.Status != HealthStarting || h.FailingStreak != 0 {
		t.Fatalf("a failure in the start period counted: %+v", h)
	}
	h = nextHealth(h, c, fail, false)
	if h.Status != HealthStarting || h.FailingStreak != 1 {
		t.Fatalf("after one failure: %+v", h)
	}
	h = nextHealth(h, c, fail, false)
	if h.Status != HealthUnhealthy {
		t.Fatalf("after Retries failures: %+v", h)
	}
	h = nextHealth(h, c, ok, false)
	if h.Status != HealthHealthy || h.FailingStreak != 0 {
		t.Fatalf("after a success: %+v", h)
	}
	for range 10 {
		h = nextHealth(h, c, ok, false)
	}
	if len(h.Log) != healthLogKeep {
		t.Fatalf("log keeps %d probes, want %d", len(h.Log), healthLogKeep)
	}
}

func TestEncodeHealthMatchesEncodingJSON(t *testing.T) {
	h := Health{Status: HealthHealthy, FailingStreak: 2, Log: []HealthLog{
		{Start: time.Unix(1, 5).UTC(), End: time.Unix(2, 0).UTC(), ExitCode: 3, Output: "a \"quoted\"\nline\x00"},
	}}
	var a, b Health
	if err := json.Unmarshal(encodeHealth(h), &a); err != nil {
		t.Fatal(err)
	}
	std, _ := json.Marshal(h)
	json.Unmarshal(std, &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("encodeHealth decodes to %+v, encoding/json's to %+v", a, b)
	}
}
