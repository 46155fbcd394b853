// Package network gives Berth containers their networks: named CNI
// networks (conflists Berth writes, plus users' own), per-container network
// namespaces, attaching a namespace to a network with published ports, and
// name resolution between containers of one network through a small DNS
// server per network.
//
// Invariants:
//   - Everything volatile lives under Config.StateDir (netns files, the CNI
//     cache, host-local leases, DNS records and server pid files), so a
//     reboot forgets it all at once, as it forgets the namespaces and
//     interfaces it describes.
//   - Attach either succeeds or leaves nothing behind (it runs CNI DEL on
//     every failure); Detach works from the CNI cache alone, so it cleans up
//     after a container, its namespace and its monitor are all gone.
//   - A network's DNS server binds only the network's gateway address and
//     answers only clients inside the network's subnet.
//
// The engine owns --network none and host: they involve no CNI and no call
// here beyond the pseudo-networks Inspect and List report.
package network
