package secmon

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/secmon/kern"
)

// An older agent's programs, still attached through their pinned links,
// send the event without the fields added since: it decodes, with those
// fields zero.
func TestDecodeShortEvent(t *testing.T) {
	full := kern.SecmonEvent{Kind: kern.KindExec, Tgid: 42, ExitCode: 7}
	full.Pcomm[0] = 'x'
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, &full)
	buf := make([]byte, binary.Size(kern.SecmonEvent{}))
	// The previous layout ended at args.
	old := b.Bytes()[:b.Len()-4-4-kern.CommLen]
	var ev kern.SecmonEvent
	ev.ExitCode, ev.Pcomm[0] = 99, 'y' // the last event's, in a reused value
	if err := decodeEvent(old, buf, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Tgid != 42 || ev.Kind != kern.KindExec || ev.ExitCode != 0 || ev.Pcomm[0] != 0 {
		t.Errorf("short sample decoded as %+v", ev)
	}
	if err := decodeEvent(b.Bytes(), buf, &ev); err != nil || ev.ExitCode != 7 || ev.Pcomm[0] != 'x' {
		t.Errorf("full sample: %+v, %v", ev, err)
	}
}

// A denied SYN's retransmits are one attempt: one alert.
func TestSynRepeat(t *testing.T) {
	a := &agent{synSeen: map[synKey]time.Time{}}
	k := synKey{cgid: 1, peerPort: 40000, locPrt: 80}
	now := time.Now()
	if a.synRepeat(k, now) || !a.synRepeat(k, now.Add(time.Second)) || !a.synRepeat(k, now.Add(synWindow)) {
		t.Error("retransmits within the window of the last one must repeat")
	}
	if a.synRepeat(k, now.Add(3*synWindow)) {
		t.Error("a SYN long after the last is another attempt")
	}
	k2 := k
	k2.peerPort++
	if a.synRepeat(k2, now) {
		t.Error("another peer port is another attempt")
	}
}
