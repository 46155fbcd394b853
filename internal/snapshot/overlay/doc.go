// Package overlay is a snapshot.Snapshotter on overlayfs, laid out as
// containerd's overlayfs snapshotter:
//
//	<root>/metadata.db          bbolt: every snapshot's name, kind, parent, labels
//	<root>/snapshots/<id>/fs    the snapshot's own tree (an overlay upperdir,
//	                            or a lowerdir once committed)
//	<root>/snapshots/<id>/work  overlayfs workdir of an active snapshot
//
// ids are short numbers from a bbolt sequence, so that lowerdir lists stay
// short. An active snapshot with a parent mounts as overlay (upperdir=fs,
// lowerdir = parents, nearest first); without a parent it is a bind mount of
// fs. A view of one committed snapshot is a read-only bind of that snapshot's
// fs; of a deeper chain, a read-only overlay of lowerdirs only.
//
// Invariant: a directory under snapshots/ exists only while the metadata
// records it. Creation renames a temporary directory into place inside the
// metadata transaction, and removal renames it out; New removes whatever a
// crash left over, when no other process has the store open (each open
// Snapshotter holds a shared flock on <root>/lock, and New cleans up only
// if it can take that lock exclusively).
//
// A tree may be prepared on no parent and committed onto one later
// (CommitOnto), so that an image pull can extract a layer while the layer
// below it is still being applied; every record's parent is committed
// all the same.
//
// Several processes may use one root at once: the database is opened for
// each transaction and closed after it, since bbolt locks the file for as
// long as it is open.
package overlay
