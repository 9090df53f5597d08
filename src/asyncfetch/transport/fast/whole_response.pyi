# The C module whole_response.c; built by tools/native.py beside the mypyc modules.
def whole_response(
    data: bytes, max_body: int, max_header_bytes: int, max_header_count: int, /
) -> tuple[int, bool, list[tuple[str, str]], bytes | None, bytes] | None: ...
