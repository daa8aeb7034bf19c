# free_port prints a port free on 127.0.0.1 for both UDP and TCP (SIP listens on
# both). Sourced by the benchmark scripts that start sipp and turbina.
free_port() {
	python3 -c 'import socket
for _ in range(50):
    u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",0)); p=u.getsockname()[1]
    t=socket.socket()
    try:
        t.bind(("127.0.0.1",p)); print(p); break
    except OSError: pass
    finally: t.close(); u.close()'
}
