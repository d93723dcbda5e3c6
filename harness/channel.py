"""Messages between the judge and a candidate process over a socket: a JSON header plus tensors.

Nothing the candidate sends is unpickled. CPU tensors travel as their raw bytes with dtype and
shape in the header (read back with torch.frombuffer); CUDA tensors travel as CUDA IPC
descriptors (plain bytes and integers, checked before use), so multi-GB inputs and outputs are
shared in place rather than copied through the host. A receiver that needs the data to outlive the
sender's next step copies it (`clone`) at once.
"""
from __future__ import annotations

import json
import math
import socket
import struct

import torch

MAX_HEADER_BYTES = 16 << 20
_LENGTH = struct.Struct("!QQ")


class ChannelClosed(Exception):
    """The other side went away (crashed, killed, or closed the socket)."""


class ChannelError(Exception):
    """The other side sent something that is not a well-formed message."""


def _encode_tree(value, tensors: list):
    if isinstance(value, torch.Tensor):
        tensors.append(value.detach())
        return {"__tensor__": len(tensors) - 1}
    if isinstance(value, (list, tuple)):
        return {"__seq__": type(value).__name__, "items": [_encode_tree(v, tensors) for v in value]}
    if isinstance(value, dict):
        return {"__dict__": [[str(k), _encode_tree(v, tensors)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    return {"__repr__": repr(value)[:200]}


def _decode_tree(value, tensors: list):
    if isinstance(value, dict):
        if "__tensor__" in value:
            index = value["__tensor__"]
            if not isinstance(index, int) or not 0 <= index < len(tensors):
                raise ChannelError("tensor reference out of range")
            return tensors[index]
        if "__seq__" in value:
            items = [_decode_tree(v, tensors) for v in value["items"]]
            return tuple(items) if value["__seq__"] == "tuple" else items
        if "__dict__" in value:
            return {str(k): _decode_tree(v, tensors) for k, v in value["__dict__"]}
        if "__dtype__" in value:
            dtype = getattr(torch, str(value["__dtype__"]), None)
            if not isinstance(dtype, torch.dtype):
                raise ChannelError(f"unknown dtype {value['__dtype__']!r}")
            return dtype
        if "__repr__" in value:
            return f"<unsendable {value['__repr__']}>"
        raise ChannelError("unknown tagged value")
    if isinstance(value, list):
        raise ChannelError("bare list in a message")
    return value


# -- CUDA IPC ------------------------------------------------------------------------------------------
def _cuda_descriptor(tensor: torch.Tensor) -> dict:
    from torch.multiprocessing.reductions import reduce_tensor
    _, args = reduce_tensor(tensor)
    (_, size, stride, offset, _, dtype, device, handle, storage_bytes, storage_offset_bytes, _,
     ref_counter_handle, ref_counter_offset, event_handle, event_sync_required) = args
    return {"size": list(size), "stride": list(stride), "offset": int(offset), "dtype": str(dtype)[6:],
            "device": int(device), "handle": bytes(handle).hex(), "storage_bytes": int(storage_bytes),
            "storage_offset_bytes": int(storage_offset_bytes), "ref_counter_handle": bytes(ref_counter_handle).hex(),
            "ref_counter_offset": int(ref_counter_offset),
            "event_handle": bytes(event_handle).hex() if event_handle else None,
            "event_sync_required": bool(event_sync_required)}


def _cuda_tensor(descriptor: dict) -> torch.Tensor:
    from torch.multiprocessing.reductions import rebuild_cuda_tensor
    try:
        dtype = getattr(torch, descriptor["dtype"])
        size, stride = [int(s) for s in descriptor["size"]], [int(s) for s in descriptor["stride"]]
        offset, storage_bytes = int(descriptor["offset"]), int(descriptor["storage_bytes"])
        if not isinstance(dtype, torch.dtype) or len(size) != len(stride) or min(size + stride + [offset], default=0) < 0:
            raise ChannelError("malformed CUDA tensor descriptor")
        itemsize = torch.empty((), dtype=dtype).element_size()
        extent = offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else 0
        if extent * itemsize > storage_bytes:
            raise ChannelError("CUDA tensor descriptor reaches past its storage")
        event = descriptor["event_handle"]
        return rebuild_cuda_tensor(
            torch.Tensor, torch.Size(size), tuple(stride), offset, torch.storage.TypedStorage, dtype,
            0, bytes.fromhex(descriptor["handle"]), storage_bytes, int(descriptor["storage_offset_bytes"]), False,
            bytes.fromhex(descriptor["ref_counter_handle"]), int(descriptor["ref_counter_offset"]),
            bytes.fromhex(event) if event else None, bool(descriptor["event_sync_required"]))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ChannelError(f"malformed CUDA tensor descriptor: {error}") from None


class Channel:
    """One end of a judge <-> candidate socket. Not thread-safe; one message at a time."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def send(self, message: dict) -> None:
        tensors: list[torch.Tensor] = []
        body = _encode_tree(message, tensors)
        cuda = [i for i, t in enumerate(tensors) if t.is_cuda]
        cpu = [(i, t.contiguous()) for i, t in enumerate(tensors) if not t.is_cuda]
        header = {"body": body, "cuda": {str(i): _cuda_descriptor(tensors[i]) for i in cuda},
                  "cpu": [[i, str(t.dtype).removeprefix("torch."), list(t.shape)] for i, t in cpu]}
        blob = b"".join(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"" for _, t in cpu)
        encoded = json.dumps(header).encode()
        try:
            self.sock.sendall(_LENGTH.pack(len(encoded), len(blob)) + encoded)
            if blob:
                self.sock.sendall(blob)
        except OSError as error:
            raise ChannelClosed(str(error)) from None

    def _read(self, count: int) -> bytes:
        chunks, left = [], count
        while left:
            try:
                chunk = self.sock.recv(min(left, 1 << 22))
            except socket.timeout:
                raise
            except OSError as error:
                raise ChannelClosed(str(error)) from None
            if not chunk:
                raise ChannelClosed("the other side closed the channel")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def recv(self, timeout_s: float | None = None) -> dict:
        """The next message; socket.timeout when nothing complete arrives within timeout_s."""
        self.sock.settimeout(timeout_s)
        try:
            header_len, blob_len = _LENGTH.unpack(self._read(_LENGTH.size))
            if header_len > MAX_HEADER_BYTES:
                raise ChannelError("message header too large")
            header = json.loads(self._read(header_len))
            blob = self._read(blob_len) if blob_len else b""
        finally:
            self.sock.settimeout(None)
        if not isinstance(header, dict):
            raise ChannelError("message is not an object")
        cpu_slots = header.get("cpu") or []
        cuda = header.get("cuda") or {}
        count = len(cpu_slots) + len(cuda)
        tensors: list = [None] * count
        data, offset = bytearray(blob), 0
        for entry in cpu_slots:
            try:
                slot, dtype_name, shape = entry
                dtype = getattr(torch, str(dtype_name))
                shape = [int(size) for size in shape]
                if not isinstance(dtype, torch.dtype) or not isinstance(slot, int) or not 0 <= slot < count \
                        or min(shape, default=0) < 0:
                    raise ValueError
            except (TypeError, ValueError, AttributeError):
                raise ChannelError("malformed CPU tensor entry") from None
            nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
            if offset + nbytes > len(data):
                raise ChannelError("CPU tensor data shorter than its header says")
            raw = torch.frombuffer(data, dtype=torch.uint8, count=nbytes, offset=offset) if nbytes \
                else torch.empty(0, dtype=torch.uint8)
            tensors[slot] = raw.view(dtype).reshape(shape)
            offset += nbytes
        for slot, descriptor in cuda.items():
            index = int(slot)
            if not 0 <= index < count or not isinstance(descriptor, dict):
                raise ChannelError("tensor slot out of range")
            tensors[index] = _cuda_tensor(descriptor)
        if any(t is None for t in tensors):
            raise ChannelError("a tensor slot was left empty")
        body = _decode_tree(header.get("body"), tensors)
        if not isinstance(body, dict):
            raise ChannelError("message body is not an object")
        return body
