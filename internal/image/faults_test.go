package image

import (
	"net/http"
	"strings"
	"sync"
)

// countBlobGets counts GETs of blobs by path.
func countBlobGets(mu *sync.Mutex, counts map[string]int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				mu.Lock()
				counts[r.URL.Path]++
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	}
}
