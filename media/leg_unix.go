//go:build unix

package media

import "syscall"

// DiscardQueued drops the datagrams already queued on the socket, without
// blocking, except the newest, which it returns (nil when nothing was queued): the
// customer's audio of the instant of the switch is fresh, the rest is stale. The
// packet given with WithFirstPacket counts as queued before all the others.
func (l *UDPLeg) DiscardQueued() (dropped int, newest []byte) {
	var pending []byte
	if p := l.first.Swap(nil); p != nil {
		pending = *p
	}
	rc, err := l.conn.SyscallConn()
	if err != nil {
		return 0, pending
	}
	var bufs [2][maxPacket]byte
	var sizes [2]int
	n := 0
	_ = rc.Read(func(fd uintptr) bool {
		for n < 10000 {
			size, _, err := syscall.Recvfrom(int(fd), bufs[n%2][:], syscall.MSG_DONTWAIT)
			if err != nil {
				break
			}
			sizes[n%2] = size
			n++
		}
		return true // never wait for readiness
	})
	switch {
	case n == 0:
		return 0, pending
	case pending != nil:
		dropped = 1
	}
	last := (n - 1) % 2
	return dropped + n - 1, append([]byte(nil), bufs[last][:sizes[last]]...)
}
