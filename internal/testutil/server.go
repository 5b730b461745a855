package testutil

import "net"

// Drain serves l until it is closed: each connection is read to EOF (or an
// error) and closed, so that the peer's close is answered as a server would.
func Drain(l net.Listener) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
}
