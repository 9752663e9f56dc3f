"""A small client for the GDB remote serial protocol: enough to run firmware to a breakpoint and
read its memory. Works with QEMU's gdbstub and with ``pyocd gdbserver``.

Packets are ``$<data>#<2-hex checksum>``; each side acknowledges a packet with ``+`` (or asks for a
resend with ``-``). Replies may use run-length encoding (``X*<n>``) and binary escapes (``}``).
Commands used: ``?`` (why stopped), ``g`` (all registers), ``p`` (one register; QEMU only answers
it once target.xml has been read), ``m addr,len`` (memory, read in chunks), ``Z0``/``z0``
(breakpoints), ``c`` (continue, then wait for the stop reply), ``k`` (kill).
"""
from __future__ import annotations

import socket
import struct
import time
from pathlib import Path


class GdbError(Exception):
    """The stub refused a command, the link broke, or a reply did not come in time."""


class GdbTimeout(GdbError):
    pass


def _checksum(data: bytes) -> bytes:
    return b"%02x" % (sum(data) & 0xFF)


def _escape(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b in b"#$}*":
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def decode_payload(data: bytes) -> bytes:
    """Undo run-length encoding and binary escapes in a received packet's payload."""
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x7D and i + 1 < len(data):       # '}' escape
            out.append(data[i + 1] ^ 0x20)
            i += 2
        elif b == 0x2A and out and i + 1 < len(data):  # '*' run length: repeat last byte n-29 times
            out += bytes((out[-1],)) * (data[i + 1] - 29)
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


class StopReply:
    """A parsed stop reply: ``S``/``T`` (stopped by a signal), ``W`` (exited), ``X`` (terminated)."""

    def __init__(self, raw: bytes):
        self.raw = raw
        self.kind = chr(raw[0]) if raw else "?"
        self.signal = int(raw[1:3], 16) if self.kind in "STWX" and len(raw) >= 3 else None
        self.fields: dict[str, str] = {}
        if self.kind == "T":
            for item in raw[3:].decode(errors="replace").split(";"):
                if ":" in item:
                    k, v = item.split(":", 1)
                    self.fields[k] = v

    @property
    def exited(self) -> bool:
        return self.kind in "WX"

    def __repr__(self) -> str:
        return f"StopReply({self.raw!r})"


class GdbClient:
    """One connection to a GDB remote stub. Use as a context manager, or call close()."""

    def __init__(self, sock: socket.socket, timeout_s: float = 10.0):
        self.sock = sock
        self.timeout_s = timeout_s
        self._buf = bytearray()
        self.packet_size = 4096
        self.features: dict[str, str] = {}
        self._target_xml: str | None = None

    # -- connecting ----------------------------------------------------------------------------

    @classmethod
    def connect_unix(cls, path: str | Path, timeout_s: float = 10.0) -> "GdbClient":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout_s)
            s.connect(str(path))
        except OSError:
            s.close()
            raise
        return cls(s, timeout_s)

    @classmethod
    def connect_tcp(cls, host: str, port: int, timeout_s: float = 10.0) -> "GdbClient":
        s = socket.create_connection((host, port), timeout=timeout_s)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s, timeout_s)

    def handshake(self) -> None:
        """Negotiate features (packet size); call once after connecting."""
        reply = self.request(b"qSupported:swbreak+;hwbreak+;xmlRegisters=arm").decode(errors="replace")
        for item in reply.split(";"):
            if "=" in item:
                k, v = item.split("=", 1)
                self.features[k] = v
            elif item:
                self.features[item.rstrip("+-?")] = item[-1] if item[-1] in "+-?" else "+"
        if "PacketSize" in self.features:
            try:
                self.packet_size = int(self.features["PacketSize"], 16)
            except ValueError:
                pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "GdbClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- packet layer --------------------------------------------------------------------------

    def _recv_some(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GdbTimeout("no reply from the GDB stub in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise GdbTimeout("no reply from the GDB stub in time") from None
        except OSError as e:
            raise GdbError(f"GDB link broke: {e}") from None
        if not chunk:
            raise GdbError("the GDB stub closed the connection")
        self._buf += chunk

    def _send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise GdbError(f"GDB link broke: {e}") from None

    def send_packet(self, payload: bytes, timeout_s: float | None = None) -> None:
        """Send one packet and wait for its acknowledgement (resend on '-')."""
        frame = b"$" + _escape(payload) + b"#" + _checksum(_escape(payload))
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        for _ in range(5):
            self._send_raw(frame)
            while True:
                # Drop anything before the ack ('+'), e.g. a stale stop reply is not expected here.
                while not self._buf:
                    self._recv_some(deadline)
                c = self._buf[0]
                if c == ord("+"):
                    del self._buf[0]
                    return
                if c == ord("-"):
                    del self._buf[0]
                    break  # resend
                if c == ord("$"):
                    return  # a stub in no-ack mode: the reply follows directly
                del self._buf[0]
        raise GdbError(f"the GDB stub kept rejecting packet {payload[:40]!r}")

    def recv_packet(self, timeout_s: float | None = None) -> bytes:
        """Wait for one packet, acknowledge it, return its decoded payload."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        while True:
            start = self._buf.find(b"$")
            if start < 0:
                self._buf.clear()  # stray acks or notifications: nothing to keep
                self._recv_some(deadline)
                continue
            end = self._buf.find(b"#", start)
            if end < 0 or len(self._buf) < end + 3:
                self._recv_some(deadline)
                continue
            body = bytes(self._buf[start + 1:end])
            check = bytes(self._buf[end + 1:end + 3])
            del self._buf[:end + 3]
            if _checksum(body) != check.lower():
                self._send_raw(b"-")
                continue
            self._send_raw(b"+")
            return decode_payload(body)

    def request(self, payload: bytes, timeout_s: float | None = None) -> bytes:
        """Send a command and return the reply; GdbError on an ``Enn`` error reply."""
        self.send_packet(payload, timeout_s)
        reply = self.recv_packet(timeout_s)
        if len(reply) == 3 and reply[:1] == b"E" and all(c in b"0123456789abcdefABCDEF" for c in reply[1:]):
            raise GdbError(f"the GDB stub answered {reply.decode()} to {payload[:40].decode(errors='replace')}")
        return reply

    # -- commands ------------------------------------------------------------------------------

    def stop_reason(self) -> StopReply:
        return StopReply(self.request(b"?"))

    def read_registers(self) -> bytes:
        """The ``g`` packet's raw register bytes (target byte order)."""
        reply = self.request(b"g")
        try:
            return bytes.fromhex(reply.decode())
        except ValueError:
            raise GdbError(f"bad 'g' reply {reply[:40]!r}") from None

    def core_registers(self) -> list[int]:
        """r0..r15 (r13 = SP, r14 = LR, r15 = PC) as unsigned 32-bit ints (ARM targets)."""
        regs = self.read_registers()
        if len(regs) < 64:
            raise GdbError(f"'g' returned only {len(regs)} bytes")
        return list(struct.unpack_from("<16I", regs))

    def target_xml(self) -> str:
        """The target description (qXfer:features:read:target.xml), read once."""
        if self._target_xml is None:
            parts: list[bytes] = []
            offset = 0
            chunk = max(256, self.packet_size - 16)
            while True:
                reply = self.request(b"qXfer:features:read:target.xml:%x,%x" % (offset, chunk))
                if not reply or reply[:1] not in (b"m", b"l"):
                    raise GdbError(f"target.xml not available (reply {reply[:40]!r})")
                parts.append(reply[1:])
                offset += len(reply) - 1
                if reply[:1] == b"l":
                    break
            self._target_xml = b"".join(parts).decode(errors="replace")
        return self._target_xml

    def read_register(self, number: int) -> bytes:
        """One register by its number in the target description (``p``); reads target.xml first."""
        try:
            self.target_xml()
        except GdbError:
            pass
        reply = self.request(b"p%x" % number)
        if not reply:
            raise GdbError(f"the GDB stub does not answer 'p' for register {number}")
        return bytes.fromhex(reply.decode())

    def read_memory(self, address: int, length: int) -> bytes:
        """``length`` bytes from ``address``, in chunks the stub's packet size allows."""
        chunk = max(16, min(2048, (self.packet_size - 8) // 2))
        out = bytearray()
        while len(out) < length:
            n = min(chunk, length - len(out))
            reply = self.request(b"m%x,%x" % (address + len(out), n))
            try:
                data = bytes.fromhex(reply.decode())
            except ValueError:
                raise GdbError(f"bad memory reply at {address + len(out):#x}: {reply[:40]!r}") from None
            if not data:
                raise GdbError(f"the GDB stub returned no data at {address + len(out):#x}")
            out += data[:n]
        return bytes(out)

    def write_memory(self, address: int, data: bytes) -> None:
        chunk = max(16, min(2048, (self.packet_size - 32) // 2))
        for off in range(0, len(data), chunk):
            part = data[off:off + chunk]
            reply = self.request(b"M%x,%x:%s" % (address + off, len(part), part.hex().encode()))
            if reply != b"OK":
                raise GdbError(f"memory write at {address + off:#x} refused: {reply[:40]!r}")

    def set_breakpoint(self, address: int, kind: int = 2, hardware: bool = False) -> None:
        """Z0 (software) or Z1 (hardware) breakpoint; kind 2 = 16-bit Thumb."""
        z = b"Z1" if hardware else b"Z0"
        reply = self.request(b"%s,%x,%x" % (z, address, kind))
        if reply != b"OK":
            raise GdbError(f"breakpoint at {address:#x} refused: {reply[:40]!r}")

    def remove_breakpoint(self, address: int, kind: int = 2, hardware: bool = False) -> None:
        z = b"z1" if hardware else b"z0"
        reply = self.request(b"%s,%x,%x" % (z, address, kind))
        if reply != b"OK":
            raise GdbError(f"removing the breakpoint at {address:#x} refused: {reply[:40]!r}")

    def cont(self) -> None:
        """Resume the target; collect the stop with wait_stop()."""
        self.send_packet(b"c")

    def wait_stop(self, timeout_s: float) -> StopReply:
        """Wait for a stop reply; console output packets (``O...``) are skipped."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GdbTimeout(f"the target did not stop within {timeout_s:g} s")
            reply = self.recv_packet(remaining)
            if reply[:1] == b"O" and reply != b"OK":
                continue
            return StopReply(reply)

    def interrupt(self) -> None:
        """Ask a running target to stop (Ctrl-C); collect the stop with wait_stop()."""
        self._send_raw(b"\x03")

    def kill(self) -> None:
        """``k``: end the target (QEMU exits). No reply is expected; errors are ignored."""
        try:
            self._send_raw(b"$k#6b")
        except GdbError:
            pass
