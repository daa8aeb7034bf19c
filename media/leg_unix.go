//go:build unix

package media

import "syscall"

// DiscardQueued drops every datagram already queued on the socket, without
// waiting for more, and returns how many it dropped. The bridge calls it on
// Connect so audio that queued before the switch is not delivered late.
func (l *UDPLeg) DiscardQueued() int {
	rc, err := l.conn.SyscallConn()
	if err != nil {
		return 0
	}
	var buf [maxPacket]byte
	n := 0
	_ = rc.Read(func(fd uintptr) bool {
		for n < 10000 {
			if _, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_DONTWAIT); err != nil {
				break
			}
			n++
		}
		return true // never wait for readiness
	})
	return n
}
