//go:build !rssdump

package main

// rssDump is a no-op in a normal build; see rssdump_on.go.
func rssDump() {}
