#!/usr/bin/env python3
r"""Independent verifier for AuditGate's hash chains.

Written from docs/canonical-encoding.md alone (Python 3 standard library, no AuditGate code, no
database driver). It reads the CSV that the extraction query of that document produces and
recomputes every chain:

    PGCLIENTENCODING=UTF8 psql -X --csv -v ON_ERROR_STOP=1 -v FETCH_COUNT=10000 -d "$URL" \
        -c "$(python3 tools/verify_chain.py --print-query)" > chain.csv
    python3 tools/verify_chain.py chain.csv

or lets psql do the extraction itself:

    python3 tools/verify_chain.py --database "$URL"

It prints one line per chain, then `OK: N chain(s), M records verified` (exit 0), or one
`FAILED: chain C seq S: <reason>` line per broken chain, naming the first record where it breaks
(exit 1). Unreadable input (missing columns, psql failing) exits 2.
"""

import argparse
import csv
import hashlib
import io
import os
import subprocess
import sys

DOMAIN_TAG = "auditgate.record.v1"

# The hashed fields, in encoding order; each is also the audit.events column and the CSV column.
FIELDS = [
    "chain_id", "seq", "recorded_at", "kind", "request_id", "user_id", "team_id", "key_id", "end_user",
    "client_ip", "api", "method", "path", "provider", "model", "stream", "status_code", "outcome",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "latency_ms", "ttfb_ms",
    "redactions", "body_sha256", "detail",
]

GENESIS = bytes(32)

# The extraction query of docs/canonical-encoding.md, section "Extracting the fields", verbatim.
QUERY = """\
SELECT e.chain_id,
       e.seq::text AS seq,
       (extract(epoch FROM e.recorded_at) * 1000000)::bigint::text AS recorded_at,
       e.kind, e.request_id, e.user_id, e.team_id, e.key_id, e.end_user, e.client_ip,
       e.api, e.method, e.path, e.provider, e.model,
       CASE WHEN e.stream THEN 'true' WHEN NOT e.stream THEN 'false' END AS stream,
       e.status_code::text AS status_code, e.outcome,
       e.input_tokens::text AS input_tokens, e.output_tokens::text AS output_tokens,
       e.cache_read_tokens::text AS cache_read_tokens, e.cache_write_tokens::text AS cache_write_tokens,
       e.latency_ms::text AS latency_ms, e.ttfb_ms::text AS ttfb_ms, e.redactions::text AS redactions,
       e.body_sha256, e.detail,
       encode(e.prev_hash, 'hex') AS prev_hash, encode(e.hash, 'hex') AS hash,
       b.body,
       concat((e.chain_id IS NULL)::int, (e.seq IS NULL)::int, (e.recorded_at IS NULL)::int,
              (e.kind IS NULL)::int, (e.request_id IS NULL)::int, (e.user_id IS NULL)::int,
              (e.team_id IS NULL)::int, (e.key_id IS NULL)::int, (e.end_user IS NULL)::int,
              (e.client_ip IS NULL)::int, (e.api IS NULL)::int, (e.method IS NULL)::int,
              (e.path IS NULL)::int, (e.provider IS NULL)::int, (e.model IS NULL)::int,
              (e.stream IS NULL)::int, (e.status_code IS NULL)::int, (e.outcome IS NULL)::int,
              (e.input_tokens IS NULL)::int, (e.output_tokens IS NULL)::int,
              (e.cache_read_tokens IS NULL)::int, (e.cache_write_tokens IS NULL)::int,
              (e.latency_ms IS NULL)::int, (e.ttfb_ms IS NULL)::int, (e.redactions IS NULL)::int,
              (e.body_sha256 IS NULL)::int, (e.detail IS NULL)::int, (b.body IS NULL)::int)
              AS null_flags,
       NULL AS canonical, NULL AS body_bytes, e.seq AS seq_order
FROM audit.events e
LEFT JOIN audit.bodies b
       ON b.chain_id = e.chain_id AND b.seq = e.seq AND b.recorded_at = e.recorded_at
UNION ALL
SELECT u.chain_id, u.seq::text,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       encode(u.prev_hash, 'hex'), encode(u.hash, 'hex'), NULL, '1111111111111111111111111111',
       encode(u.canonical, 'hex'), encode(u.body, 'hex'), u.seq
FROM audit.unstorable_records u
ORDER BY chain_id, seq_order;
"""

COLUMNS = FIELDS + ["prev_hash", "hash", "body", "null_flags", "canonical", "body_bytes"]


def query_for(chain_id=None):
    """The extraction query, for every chain or (with a WHERE clause before ORDER BY) for one."""
    if chain_id is None:
        return QUERY
    literal = "E'" + chain_id.replace("\\", "\\\\").replace("'", "''") + "'"
    return (QUERY.replace("UNION ALL", f"WHERE e.chain_id = {literal}\nUNION ALL")
            .replace("ORDER BY", f"WHERE u.chain_id = {literal}\nORDER BY"))


def encode_field(value):
    """0x00 for NULL; else 0x01, the UTF-8 length as 4 bytes big-endian, the UTF-8 bytes."""
    if value is None:
        return b"\x00"
    data = value.encode("utf-8")
    return b"\x01" + len(data).to_bytes(4, "big") + data


def canonical(values):
    """The canonical encoding of a record: the domain tag, then the 27 field texts in order."""
    return encode_field(DOMAIN_TAG) + b"".join(encode_field(v) for v in values)


def decode_canonical(data):
    """The 27 field texts of a canonical encoding (a record kept as bytes in audit.unstorable_records)."""
    items, index = [], 0
    while index < len(data):
        marker = data[index]
        index += 1
        if marker == 0:
            items.append(None)
            continue
        if marker != 1 or len(data) - index < 4:
            raise Failure("malformed record: its canonical encoding is not a sequence of items")
        length = int.from_bytes(data[index:index + 4], "big")
        index += 4
        if len(data) - index < length:
            raise Failure("malformed record: an item of its canonical encoding runs past its end")
        try:
            items.append(data[index:index + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise Failure("malformed record: an item of its canonical encoding is not UTF-8")
        index += length
    if len(items) != len(FIELDS) + 1 or items[0] != DOMAIN_TAG:
        raise Failure("malformed record: its canonical encoding lacks the domain tag or has the wrong item count")
    return items[1:]


def chain_hash(prev_hash, encoding):
    return hashlib.sha256(prev_hash + encoding).digest()


class Failure(Exception):
    """A record that cannot be checked (reported as that record's fault)."""


class InputError(Exception):
    """Input that is not the extraction CSV at all (exit 2)."""


def gap_reason(expected, found):
    if found - expected == 1:
        return f"gap: seq {expected} is missing"
    return f"gap: seq {expected} to {found - 1} are missing"


class Chain:
    def __init__(self, chain_id, partial):
        self.chain_id = chain_id
        self.expected_seq = None if partial else 1
        self.expected_prev = None if partial else GENESIS
        self.count = 0
        self.first = self.last = None
        self.entering = self.head = b""
        self.failure = None  # (seq, reason) of the first record where the chain breaks

    def consume(self, seq, values, prev_hash, hash_, body):
        """Checks one record (given in seq order); remembers only the first failure."""
        reason = None
        if self.expected_seq is None:  # --partial: the chain starts at its first record
            self.expected_seq, self.expected_prev = seq, prev_hash
        if seq > self.expected_seq:
            reason = gap_reason(self.expected_seq, seq)
        elif seq < self.expected_seq:
            reason = f"reorder: expected seq {self.expected_seq}, found seq {seq} again or out of order"
        if reason is None:
            if len(prev_hash) != 32 or len(hash_) != 32:
                reason = "malformed record: hash or prev_hash is not 32 bytes"
            elif chain_hash(prev_hash, canonical(values)) != hash_:
                reason = "hash mismatch: the record's fields do not produce its stored hash (the record was altered)"
            elif prev_hash != self.expected_prev:
                reason = ("broken link: prev_hash is not the hash of the previous record "
                          "(a record was removed, inserted or moved)")
            elif body is not None and hashlib.sha256(body.encode("utf-8")).hexdigest() != values[25]:
                reason = "body mismatch: the stored body does not match the body digest in the chain"
        if reason is not None and self.failure is None:
            self.failure = (seq, reason)
        if self.count == 0:
            self.first, self.entering = seq, prev_hash
        self.count += 1
        self.last = seq
        self.head = hash_
        self.expected_seq = max(self.expected_seq, seq + 1)
        self.expected_prev = hash_


def parse_hex(text, what):
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise Failure(f"malformed record: {what} is not hexadecimal")


def verify(stream, partial=False, only_chain=None):
    """Reads the extraction CSV from a text stream; returns the chains in order of first appearance."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        raise InputError("empty input (expected the CSV header of the extraction query)")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputError(f"input lacks column(s) {', '.join(missing)}; use the query of --print-query")
    index = {name: header.index(name) for name in COLUMNS}
    chains = {}
    for line, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise InputError(f"CSV record {line} has {len(row)} fields, the header has {len(header)}")
        chain_id, seq_text = row[index["chain_id"]], row[index["seq"]]
        if only_chain is not None and chain_id != only_chain:
            continue
        chain = chains.get(chain_id)
        if chain is None:
            chain = chains[chain_id] = Chain(chain_id, partial)
        try:
            flags = row[index["null_flags"]]
            if len(flags) != len(FIELDS) + 1 or set(flags) - {"0", "1"}:
                raise Failure("malformed record: null_flags is not 28 characters of 0 and 1")
            values = [None if flags[i] == "1" else row[index[name]] for i, name in enumerate(FIELDS)]
            body = None if flags[-1] == "1" else row[index["body"]]
            if row[index["canonical"]]:
                # A record kept as bytes: its fields are what its canonical encoding holds.
                values = decode_canonical(parse_hex(row[index["canonical"]], "canonical"))
                if values[0] != chain_id or values[1] != seq_text:
                    raise Failure("malformed record: its canonical encoding names another chain_id or seq")
                body = None
                if row[index["body_bytes"]]:
                    try:
                        body = parse_hex(row[index["body_bytes"]], "body_bytes").decode("utf-8")
                    except UnicodeDecodeError:
                        raise Failure("malformed record: its body is not UTF-8")
            if not seq_text.isascii() or not seq_text.isdigit() or str(int(seq_text)) != seq_text:
                raise Failure(f"malformed record: seq '{seq_text}' is not a decimal integer")
            prev_hash = parse_hex(row[index["prev_hash"]], "prev_hash")
            hash_ = parse_hex(row[index["hash"]], "hash")
        except Failure as failure:
            if chain.failure is None:
                chain.failure = (seq_text, str(failure))
            continue
        chain.consume(int(seq_text), values, prev_hash, hash_, body)
    return list(chains.values())


def open_input(args):
    """The CSV as a text stream, and the psql process when this tool runs the query itself."""
    if args.database:
        env = dict(os.environ, PGCLIENTENCODING="UTF8")
        command = ["psql", "-X", "--csv", "-v", "ON_ERROR_STOP=1", "-v", "FETCH_COUNT=10000", "-d", args.database, "-c", query_for(args.chain_id)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
        return io.TextIOWrapper(process.stdout, encoding="utf-8", newline=""), process
    if args.csv == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline=""), None
    return open(args.csv, encoding="utf-8", newline=""), None


def main():
    parser = argparse.ArgumentParser(
        description="Recompute AuditGate hash chains from the extraction CSV of docs/canonical-encoding.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  python3 tools/verify_chain.py --print-query > extract.sql
  PGCLIENTENCODING=UTF8 psql -X --csv -v ON_ERROR_STOP=1 -v FETCH_COUNT=10000 -d "$URL" -f extract.sql > chain.csv
  python3 tools/verify_chain.py chain.csv          # or: ... | python3 tools/verify_chain.py
  python3 tools/verify_chain.py --database "$URL"  # runs psql with the query itself
  python3 tools/verify_chain.py --database "$URL" --chain-id gw-eu-1   # one chain only

exit status: 0 every chain verified, 1 a chain is broken (FAILED lines name chain and seq),
2 the input could not be read (missing columns, psql error).""")
    parser.add_argument("csv", nargs="?", default="-", help="CSV file from the extraction query ('-' or omitted: stdin)")
    parser.add_argument("--database", metavar="URL", help="run the extraction query with psql against this database")
    parser.add_argument("--print-query", action="store_true", help="print the extraction query and exit")
    parser.add_argument("--chain-id", metavar="ID",
                        help="verify only this chain (with --database and --print-query: extract only it)")
    parser.add_argument("--partial", action="store_true",
                        help="the input holds only part of each chain (a period): start each chain at its first "
                             "record instead of requiring seq 1 after 32 zero bytes; check its prev_hash yourself")
    args = parser.parse_args()
    if args.print_query:
        sys.stdout.write(query_for(args.chain_id))
        return 0
    limit = sys.maxsize
    while True:  # bodies can exceed csv's default 128 KiB field limit
        try:
            csv.field_size_limit(limit)
            break
        except OverflowError:
            limit //= 2
    try:
        stream, process = open_input(args)
    except OSError as error:
        print(f"verify_chain: {error}", file=sys.stderr)
        return 2
    problem = None
    try:
        with stream:
            chains = verify(stream, args.partial, args.chain_id)
    except UnicodeDecodeError as error:
        problem = f"input is not UTF-8: {error}"
    except (InputError, csv.Error) as error:
        problem = str(error)
    if process is not None and process.wait() != 0:
        problem = f"psql failed (exit {process.returncode})"
    if problem is not None:
        print(f"verify_chain: {problem}", file=sys.stderr)
        return 2
    for chain in chains:
        state = "BROKEN" if chain.failure else "intact"
        entering = f"after {chain.entering.hex()}, " if args.partial else ""
        print(f"chain {chain.chain_id}: seq {chain.first}...{chain.last}, {chain.count} records, {entering}"
              f"head {chain.head.hex()} {state}")
    failures = [chain for chain in chains if chain.failure]
    for chain in failures:
        print(f"FAILED: chain {chain.chain_id} seq {chain.failure[0]}: {chain.failure[1]}")
    if failures:
        return 1
    if not chains:
        print("verify_chain: warning: the input holds no records", file=sys.stderr)
    print(f"OK: {len(chains)} chain(s), {sum(c.count for c in chains)} records verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
