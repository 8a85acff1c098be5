"""A small MTA-side milter protocol client (protocol version 6), for the tests
miltertest cannot express: many concurrent sessions, a policy change between
two MAIL commands, clients that vanish or never say QUIT, exact reply texts.

Wire format: every packet is a 4-byte big-endian length (command byte + data),
the command byte, then the data. Strings are NUL-terminated.
"""

import socket
import struct

# MTA -> filter commands
SMFIC_ABORT = b"A"
SMFIC_CONNECT = b"C"
SMFIC_MACRO = b"D"
SMFIC_HELO = b"H"
SMFIC_MAIL = b"M"
SMFIC_OPTNEG = b"O"
SMFIC_QUIT = b"Q"
SMFIC_RCPT = b"R"

# filter -> MTA replies
SMFIR_ACCEPT = b"a"
SMFIR_CONTINUE = b"c"
SMFIR_REJECT = b"r"
SMFIR_TEMPFAIL = b"t"
SMFIR_REPLYCODE = b"y"

SMFIF_SETSYMLIST = 0x100
SMFI_CURR_ACTS = 0x1FF
SMFI_CURR_PROT = 0x1FFFFF

SMFIP_NOCONNECT = 0x1
SMFIP_NOHELO = 0x2
SMFIP_NOMAIL = 0x4
SMFIP_NORCPT = 0x8
SMFIP_NOBODY = 0x10
SMFIP_NOHDRS = 0x20
SMFIP_NOEOH = 0x40
SMFIP_NOUNKNOWN = 0x100
SMFIP_NODATA = 0x200

SMFIM_CONNECT = 0
SMFIM_HELO = 1
SMFIM_ENVFROM = 2

MAX_PACKET = 1 << 20


class MilterError(Exception):
    pass


class Negotiated:
    def __init__(self, version, actions, protocol, macros):
        self.version = version
        self.actions = actions
        self.protocol = protocol
        self.macros = macros  # stage -> list of macro names


def pack(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def cstr(s):
    if isinstance(s, str):
        s = s.encode()
    return s + b"\0"


class MilterClient:
    """One MTA-to-filter connection. Methods that expect an answer return
    (reply command, data bytes)."""

    def __init__(self, address, timeout=10.0):
        if isinstance(address, str) and address.startswith("unix:"):
            address = address[5:]
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, cmd, data=b""):
        self.sock.sendall(pack(cmd, data))

    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise MilterError("filter closed the connection")
            buf += chunk
        return buf

    def recv(self):
        (length,) = struct.unpack(">I", self._read_exact(4))
        if length < 1 or length > MAX_PACKET:
            raise MilterError("bad packet length %d" % length)
        body = self._read_exact(length)
        return body[:1], body[1:]

    def optneg(self, version=6, actions=SMFI_CURR_ACTS, protocol=SMFI_CURR_PROT):
        self.send(SMFIC_OPTNEG, struct.pack(">III", version, actions, protocol))
        cmd, data = self.recv()
        if cmd != SMFIC_OPTNEG or len(data) < 12:
            raise MilterError("bad OPTNEG reply %r %r" % (cmd, data))
        v, a, p = struct.unpack(">III", data[:12])
        macros = {}
        rest = data[12:]
        while len(rest) >= 5:
            (stage,) = struct.unpack(">I", rest[:4])
            end = rest.index(b"\0", 4)
            macros[stage] = rest[4:end].decode().split()
            rest = rest[end + 1 :]
        self.negotiated = Negotiated(v, a, p, macros)
        return self.negotiated

    def macros(self, cmd, pairs):
        data = cmd
        for name, value in pairs.items():
            data += cstr(name) + cstr(value)
        self.send(SMFIC_MACRO, data)

    def connect(self, hostname="client.example.test", addr="192.0.2.10", port=40000,
                family=b"4", macros=None):
        if macros:
            self.macros(SMFIC_CONNECT, macros)
        if family == b"U":
            data = cstr(hostname) + family
        else:
            data = cstr(hostname) + family + struct.pack(">H", port) + cstr(addr)
        self.send(SMFIC_CONNECT, data)
        return self.recv()

    def mail(self, sender="<alice@example.test>", macros=None, args=()):
        if macros:
            self.macros(SMFIC_MAIL, macros)
        data = cstr(sender) + b"".join(cstr(a) for a in args)
        self.send(SMFIC_MAIL, data)
        return self.recv()

    def abort(self):
        self.send(SMFIC_ABORT)

    def quit(self):
        self.send(SMFIC_QUIT)


def reply_text(data):
    """The reply of an SMFIR_REPLYCODE packet as text, without the NUL."""
    return data.rstrip(b"\0").decode()


def session(address, mail_macros, connect_macros=None, addr="192.0.2.10",
            sender="<alice@example.test>", timeout=10.0):
    """A whole session: OPTNEG, CONNECT, MAIL, QUIT. Returns the MAIL reply."""
    with MilterClient(address, timeout=timeout) as c:
        c.optneg()
        cmd, _ = c.connect(addr=addr, macros=connect_macros)
        if cmd != SMFIR_CONTINUE:
            raise MilterError("CONNECT answered %r" % cmd)
        result = c.mail(sender, macros=mail_macros)
        c.quit()
        return result
