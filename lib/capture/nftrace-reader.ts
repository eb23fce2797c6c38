/**
 * The kit's reader of the kernel's nf_tables trace events: the netlink messages `nft monitor trace`
 * reads (group NFNLGRP_NFTRACE), decoded by a small Python program on the node and written one
 * event per line. nft looks up and prints every rule and header in full, one write per line
 * (3.5–4.3 KB for each traced SYN through kube-proxy's rules); this program writes the fields a
 * walk needs (ids, chains, rule handles, verdicts, addresses and ports) and writes them in batches,
 * so a trace of 1000 connections keeps pace with the connections. Rule texts are looked up by
 * handle in a listing read before the trace (lib/capture/live-trace.ts).
 *
 * It runs as `/usr/bin/python3 -I -`, the program on standard input: the system's Python by its
 * full path, isolated (-I: no PYTHON* variables, user site-packages or working directory on its
 * path), so nothing another user can write is executed. Only the standard library is used.
 *
 * Output, tab-separated; names escaped as \\ \t \n \r:
 *   listening NS                   joined the group; NS is CLOCK_MONOTONIC in nanoseconds
 *   packet ID FAMILY TABLE CHAIN SRC DST PROTO SPORT DPORT IIF OIF
 *                                  the headers the kernel sends with a base chain's first event
 *   rule ID FAMILY TABLE CHAIN HANDLE VERDICT TARGET
 *   policy ID FAMILY TABLE CHAIN VERDICT
 *   return ID FAMILY TABLE CHAIN VERDICT TARGET
 *   drained NS                     every event the kernel queued before NS is above this line
 * As nft does, rule events without a handle (the end of a chain) are not written. Where the
 * kernel drops events because the reader fell behind, it says so on stderr and exits 3. Its socket
 * buffer is 32 MiB; KUBE_NETLAB_NFTRACE_RCVBUF (bytes) sets another (tests make it overflow).
 */

/** The command that runs the program (given on its standard input) on the node. */
export const NFTRACE_READER_ARGV: readonly string[] = ['/usr/bin/python3', '-I', '-'];

/** How the report names the reader, with what anyone can type to see the same events. */
export const NFTRACE_READER_LABEL = "/usr/bin/python3 -I - < kube-netlab's NFTRACE reader (lib/capture/nftrace-reader.ts; `nft monitor trace` prints the same events)";

/** Exit status when the kernel dropped events because the reader fell behind (ENOBUFS). */
export const NFTRACE_READER_OVERRUN = 3;

export const NFTRACE_READER_PROGRAM = String.raw`
import errno, os, select, socket, struct, sys, time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NFNLGRP_NFTRACE = 9
SO_RCVBUFFORCE = 33
NLMSG_ERROR = 2
NFT_MSG_TRACE = (10 << 8) | 17
TYPE_POLICY, TYPE_RETURN, TYPE_RULE = 1, 2, 3
FAMILY = {1: 'inet', 2: 'ip', 3: 'arp', 5: 'netdev', 7: 'bridge', 10: 'ip6'}
VERDICT = {0: 'drop', 1: 'accept', 2: 'stolen', 3: 'queue', 4: 'repeat', 5: 'stop',
           -1: 'continue', -2: 'break', -3: 'jump', -4: 'goto', -5: 'return'}
PROTO = {6: 'tcp', 17: 'udp', 132: 'sctp'}
NLMSGHDR = struct.Struct('=IH').unpack_from
NLATTR = struct.Struct('=HH').unpack_from
U32 = struct.Struct('>I').unpack_from
I32 = struct.Struct('>i').unpack_from
U64 = struct.Struct('>Q').unpack_from
PORTS = struct.Struct('>HH').unpack_from
clock = time.CLOCK_MONOTONIC

names = {}
def name(raw):
    s = names.get(raw)
    if s is None:
        s = raw.split(b'\0', 1)[0].decode('utf-8', 'backslashreplace')
        s = s.replace('\\', '\\\\').replace('\t', '\\t').replace('\n', '\\n').replace('\r', '\\r')
        names[raw] = s
    return s

ifnames = {}
def ifname(index):
    if not index:
        return ''
    s = ifnames.get(index)
    if s is None:
        try:
            s = name(socket.if_indextoname(index).encode())
        except OSError:
            s = str(index)
        ifnames[index] = s
    return s

def verdict_name(code):
    return VERDICT.get(code if code < 0 else code & 0xff, str(code))

def verdict(buf, at, end):
    code, chain = None, ''
    while at + 4 <= end:
        length, kind = NLATTR(buf, at)
        if length < 4:
            break
        kind &= 0x3fff
        if kind == 1:
            code = I32(buf, at + 4)[0]
        elif kind == 2:
            chain = name(bytes(buf[at + 4:at + length]))
        at += (length + 3) & ~3
    return ('?' if code is None else verdict_name(code)), chain

def headers(network, transport):
    src = dst = proto = sport = dport = ''
    number = -1
    if len(network) >= 20 and network[0] >> 4 == 4:
        src, dst = socket.inet_ntop(socket.AF_INET, network[12:16]), socket.inet_ntop(socket.AF_INET, network[16:20])
        number = network[9]
    elif len(network) >= 40 and network[0] >> 4 == 6:
        src, dst = socket.inet_ntop(socket.AF_INET6, network[8:24]), socket.inet_ntop(socket.AF_INET6, network[24:40])
        number = network[6]
    if number >= 0:
        proto = PROTO.get(number, str(number))
    if proto in ('tcp', 'udp', 'sctp') and transport is not None and len(transport) >= 4:
        sport, dport = PORTS(transport, 0)
    return src, dst, proto, sport, dport

def event(buf, start, end, write):
    family = FAMILY.get(buf[start + 16], str(buf[start + 16]))
    table = chain = handle = target = ''
    kind = trace_id = iif = oif = 0
    result = '?'
    policy = None
    network = transport = None
    at = start + 20
    while at + 4 <= end:
        length, attr = NLATTR(buf, at)
        if length < 4 or at + length > end:
            break
        attr &= 0x3fff
        value = at + 4
        if attr == 1:
            table = name(bytes(buf[value:at + length]))
        elif attr == 2:
            chain = name(bytes(buf[value:at + length]))
        elif attr == 3:
            handle = str(U64(buf, value)[0])
        elif attr == 4:
            kind = U32(buf, value)[0]
        elif attr == 5:
            result, target = verdict(buf, value, at + length)
        elif attr == 6:
            trace_id = U32(buf, value)[0]
        elif attr == 8:
            network = bytes(buf[value:at + length])
        elif attr == 9:
            transport = bytes(buf[value:at + length])
        elif attr == 10:
            iif = U32(buf, value)[0]
        elif attr == 12:
            oif = U32(buf, value)[0]
        elif attr == 16:
            policy = I32(buf, value)[0]
        at += (length + 3) & ~3
    head = '%08x\t%s\t%s\t%s' % (trace_id, family, table, chain)
    if network is not None:
        src, dst, proto, sport, dport = headers(network, transport)
        write('packet\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' % (head, src, dst, proto, sport, dport, ifname(iif), ifname(oif)))
    if kind == TYPE_RULE:
        if handle:
            write('rule\t%s\t%s\t%s\t%s\n' % (head, handle, result, target))
    elif kind == TYPE_POLICY:
        write('policy\t%s\t%s\n' % (head, result if policy is None else verdict_name(policy)))
    elif kind == TYPE_RETURN:
        write('return\t%s\t%s\t%s\n' % (head, result, target))

def main():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    size = os.environ.get('KUBE_NETLAB_NFTRACE_RCVBUF', '')
    size = max(1024, min(int(size), 1 << 30)) if size.isdigit() else 32 << 20
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    sock.bind((0, 0))
    sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTRACE)
    out = sys.stdout
    write = out.write
    write('listening\t%d\n' % time.clock_gettime_ns(clock))
    out.flush()
    buf = bytearray(1 << 17)
    while True:
        now = time.clock_gettime_ns(clock)
        try:
            size = sock.recv_into(buf, 0, socket.MSG_DONTWAIT)
        except BlockingIOError:
            # The queue was empty after 'now': everything sent before it has been written.
            write('drained\t%d\n' % now)
            out.flush()
            select.select([sock], [], [], 0.02)
            continue
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                out.flush()
                sys.stderr.write('nftrace reader: No buffer space available: the kernel dropped trace events\n')
                sys.exit(3)
            raise
        at = 0
        while at + 16 <= size:
            length, kind = NLMSGHDR(buf, at)
            if length < 16 or at + length > size:
                break
            if kind == NFT_MSG_TRACE:
                event(buf, at, at + length, write)
            elif kind == NLMSG_ERROR and length >= 20:
                error = -struct.unpack_from('=i', buf, at + 16)[0]
                if error:
                    sys.stderr.write('nftrace reader: netlink error %d\n' % error)
                    sys.exit(1)
            at += (length + 3) & ~3

try:
    main()
except (KeyboardInterrupt, BrokenPipeError):
    pass
`;
