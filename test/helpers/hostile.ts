/**
 * Hostile input for the rule generators, with what each case must give.
 *
 * A case is a valid cluster (or list of service ports) plus up to two mutations. The valid part
 * already uses every odd form the API accepts (leading zeros, `::ffff:a.b.c.d`, spaces around
 * source ranges, host bits, IPv6 next to IPv4, 63-character names), so it must load and say the
 * same addresses kube-proxy would. Each mutation declares its outcome: `error` (the reader or
 * generator must refuse) or `ok` (accepted, e.g. an IPv6 Service the IPv4 proxier skips). The
 * oracle for names is the API server's own regexes, written here independently of lib/k8s.
 */
import fc from 'fast-check';
import type { EndpointInfo, ServicePortInfo } from '../../lib/k8s/types.ts';

// ---- the API server's syntax, as upstream writes it (apimachinery pkg/util/validation) ----

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const isDns1123Label = (s: string) => s.length <= 63 && DNS1123_LABEL.test(s);
const isDns1123Subdomain = (s: string) => s.length <= 253 && DNS1123_SUBDOMAIN.test(s);

/** Text that breaks out of a token in iptables-restore, ipset or nft input, or is just wrong. */
export const HOSTILE_TEXT: readonly string[] = [
  'a"b', 'a\nb', 'p"\n-A INPUT -j DROP\n#', 'x } ; add table ip pwned ; #', 'x\n}\nadd table ip pwned\n', 'a;b', 'a#b', 'a\\b',
  'a{b', 'a}b', 'Upper', '-lead', 'trail-', 'a b', '', 'a'.repeat(64), 'é', 'a_b', 'a.b', 'a\u0000b', 'a\tb', '$(reboot)',
  "'q'", 'a/b', 'a:b', '..', 'a\r\nCOMMIT',
];

/** A service port name that injects a rule into iptables-restore input (the reported issue). */
export const PORT_NAME_INJECTION = 'http"\n-A INPUT -j DROP\n-A KUBE-SERVICES -m comment --comment "x';
/** A source range that injects a table and turns the firewall's drop into accept in nft input (the reported issue). */
export const SOURCE_RANGE_INJECTION = '203.0.113.0/24 } accept\nadd table ip pwned\nadd rule ip kube-proxy filter-input ip saddr { 0.0.0.0/0';

const label = (first: string) => fc.stringMatching(new RegExp(`^[${first}]([a-z0-9-]{0,6}[a-z0-9])?$`));
const longLabel = (first: string) => fc.constant(`${first}${'x'.repeat(61)}9`);
const namespaceArb = fc.oneof({ weight: 5, arbitrary: label('a-z0-9') }, { weight: 1, arbitrary: longLabel('n') });
const serviceNameArb = fc.oneof({ weight: 5, arbitrary: label('a-z') }, { weight: 1, arbitrary: longLabel('s') });
const portNameArb = fc.oneof({ weight: 5, arbitrary: label('a-z0-9') }, { weight: 1, arbitrary: longLabel('p') });

// ---- addresses in every form, with what kube-proxy reads them as ----

type IpForm = 'canonical' | 'leading-zeros' | 'ipv4-mapped' | 'ipv4-mapped-hex';
type BadIpForm = 'hex-octet' | 'single-number' | 'three-parts' | 'octet-over-255' | 'injected-quote' | 'injected-brace' | 'padded' | 'empty';

const BAD_IP_FORMS: readonly BadIpForm[] = ['hex-octet', 'single-number', 'three-parts', 'octet-over-255', 'injected-quote', 'injected-brace', 'padded', 'empty'];

const hex4 = (n: number) => n.toString(16);

/** How a form writes octets a.b.c.d; every valid form means the dotted quad `a.b.c.d`. */
function writeIp(o: readonly number[], form: IpForm | BadIpForm, zeros = 1): string {
  const [a, b, c, d] = o;
  const quad = o.join('.');
  switch (form) {
    case 'canonical': return quad;
    case 'leading-zeros': return o.map((x) => `${'0'.repeat(zeros)}${x}`).join('.');
    case 'ipv4-mapped': return `::ffff:${quad}`;
    case 'ipv4-mapped-hex': return `::ffff:${hex4(a * 256 + b)}:${hex4(c * 256 + d)}`;
    case 'hex-octet': return `0x${a.toString(16)}.${b}.${c}.${d}`;
    case 'single-number': return String(((a << 24) | (b << 16) | (c << 8) | d) >>> 0);
    case 'three-parts': return `${a}.${b}.${c * 256 + d}`;
    case 'octet-over-255': return `${a}.${b}.${c}.${256 + d}`;
    case 'injected-quote': return `${quad}"\n-A INPUT -j DROP\n#`;
    case 'injected-brace': return `${quad} } ; add table ip pwned ; #`;
    case 'padded': return ` ${quad}`;
    case 'empty': return '';
  }
}

/** An IPv6 address from the documentation prefix. */
const ipv6Arb = fc.integer({ min: 1, max: 0xffff }).map((n) => `2001:db8::${n.toString(16)}`);

// ---- a valid cluster, as kubectl prints it ----

interface ServiceModel {
  ns: string;
  name: string;
  type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  clusterOctets: number[];
  clusterForm: IpForm;
  zeros: number;
  /** Dual stack written with the IPv6 address first: spec.clusterIP is IPv6, the IPv4 one is in clusterIPs[1]. */
  dualStackV6First: boolean;
  ports: { name: string; protocol: 'TCP' | 'UDP' | 'SCTP'; port: number; targetPort: number | string; nodePort: number | null }[];
  affinity: number | null;
  externalIPs: { octets: number[]; form: IpForm }[];
  externalIPv6: string[];
  ingress: { octets: number[]; form: IpForm } | null;
  sourceRanges: string[];
  etp: 'Cluster' | 'Local';
  itp: 'Cluster' | 'Local';
  selector: Record<string, string>;
  slices: SliceModel[];
}

interface SliceModel {
  suffix: string;
  ipv6: boolean;
  endpoints: { octets: number[]; form: IpForm; ready: boolean | null; serving: boolean | null; terminating: boolean | null; node: string | null; pod: string | null }[];
  /** Indexes into the service's ports, each with the number endpoints listen on. */
  ports: { of: number; port: number }[];
}

const protocolArb = fc.constantFrom<'TCP' | 'UDP' | 'SCTP'>('TCP', 'TCP', 'UDP', 'SCTP');
const formArb = fc.constantFrom<IpForm>('canonical', 'canonical', 'leading-zeros', 'ipv4-mapped', 'ipv4-mapped-hex');
const octetArb = fc.integer({ min: 1, max: 254 });
const boolOrNull = fc.constantFrom(true, true, false, null);

/**
 * Source ranges in the forms the API accepts: spaces (trimmed), host bits (cleared), leading
 * zeros, IPv4-mapped (192.0.2.0/24), IPv6 (ignored), and /0 (every source).
 */
const SOURCE_RANGE_FORMS: readonly string[] = [
  '203.0.113.0/24', ' 198.51.100.0/25 ', '172.18.7.9/16', '010.0.0.0/08', '::ffff:192.0.2.0/120', '2001:db8::/32', '0.0.0.0/0',
];

const sliceArb = (portCount: number, index: number): fc.Arbitrary<SliceModel> => fc.record({
  suffix: fc.constant(`s${index}`),
  ipv6: fc.boolean().map((b) => b && index > 0),
  endpoints: fc.array(fc.record({
    octets: fc.tuple(fc.constant(10), fc.constant(244), fc.integer({ min: 0, max: 3 }), octetArb).map((t) => [...t]),
    form: formArb,
    ready: boolOrNull,
    serving: boolOrNull,
    terminating: boolOrNull,
    node: fc.constantFrom(null, 'kind-worker', 'kind-worker2', 'kind-control-plane'),
    pod: fc.option(label('a-z'), { nil: null }),
  }), { maxLength: 3 }),
  ports: fc.uniqueArray(fc.integer({ min: 0, max: portCount - 1 }), { maxLength: portCount })
    .chain((ofs) => fc.tuple(...ofs.map((of) => fc.integer({ min: 1, max: 65535 }).map((port) => ({ of, port }))))),
});

const serviceArb = (index: number): fc.Arbitrary<Omit<ServiceModel, 'ns' | 'name'>> =>
  fc.record({
    type: fc.constantFrom<ServiceModel['type']>('ClusterIP', 'NodePort', 'LoadBalancer'),
    portCount: fc.integer({ min: 1, max: 3 }),
  }).chain(({ type, portCount }) => fc.record({
    type: fc.constant(type),
    clusterOctets: fc.tuple(octetArb, octetArb).map(([c, d]) => [10, 96, index * 16 + (c % 16), d]),
    clusterForm: formArb,
    zeros: fc.integer({ min: 1, max: 4 }),
    dualStackV6First: fc.boolean().map((b) => b && index === 1),
    ports: fc.tuple(
      fc.uniqueArray(portNameArb, { minLength: portCount, maxLength: portCount }),
      fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { minLength: portCount, maxLength: portCount }),
      fc.array(protocolArb, { minLength: portCount, maxLength: portCount }),
      fc.array(fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constantFrom('http', 'metrics', 'dns-tcp', 'a1')), { minLength: portCount, maxLength: portCount }),
    ).map(([names, numbers, protocols, targets]) => names.map((n, i) => ({
      // One port may stay unnamed.
      name: portCount === 1 && i === 0 && numbers[0] % 2 === 0 ? '' : n,
      protocol: protocols[i],
      port: numbers[i],
      targetPort: targets[i],
      nodePort: type === 'ClusterIP' ? null : 30000 + index * 100 + i,
    }))),
    affinity: fc.option(fc.integer({ min: 1, max: 86400 }), { nil: null }),
    externalIPs: fc.array(fc.record({ octets: fc.tuple(fc.constant(192), fc.constant(0), fc.constant(2), octetArb).map((t) => [...t]), form: formArb }), { maxLength: 2 }),
    externalIPv6: fc.array(ipv6Arb, { maxLength: 1 }),
    ingress: type === 'LoadBalancer'
      ? fc.option(fc.record({ octets: fc.constant<number[]>([198, 51, 100, 10 + index]), form: formArb }), { nil: null })
      : fc.constant(null),
    sourceRanges: type === 'LoadBalancer'
      ? fc.uniqueArray(fc.constantFrom(...SOURCE_RANGE_FORMS), { maxLength: 3 })
      : fc.constant<string[]>([]),
    etp: fc.constantFrom<'Cluster' | 'Local'>('Cluster', 'Local'),
    itp: fc.constantFrom<'Cluster' | 'Local'>('Cluster', 'Local'),
    selector: fc.dictionary(fc.constantFrom('app', 'app.kubernetes.io/name', 'tier', 'k8s-app'), label('a-z0-9'), { maxKeys: 2 }),
    slices: fc.tuple(sliceArb(portCount, 0), sliceArb(portCount, 1)).chain(([a, b]) => fc.subarray([a, b])),
  }));

/** One to three Services with unique namespace/name, each with up to two EndpointSlices. */
export const clusterModelArb: fc.Arbitrary<ServiceModel[]> = fc
  .uniqueArray(fc.tuple(namespaceArb, serviceNameArb), { minLength: 1, maxLength: 3, selector: ([n, s]) => `${n}/${s}` })
  .chain((names) => fc.tuple(...names.map(([ns, name], i) => serviceArb(i).map((s) => ({ ...s, ns, name })))));

type Json = Record<string, unknown>;

/** The List `kubectl get services,endpointslices -A -o json` would print for the model. */
export function listOf(model: readonly ServiceModel[]): { kind: 'List'; items: Json[] } {
  const items: Json[] = [];
  for (const s of model) {
    const v4 = writeIp(s.clusterOctets, s.clusterForm, s.zeros);
    const v6 = `2001:db8:96::${s.clusterOctets[3].toString(16)}`;
    const spec: Json = {
      type: s.type,
      clusterIP: s.dualStackV6First ? v6 : v4,
      clusterIPs: s.dualStackV6First ? [v6, v4] : [v4],
      ports: s.ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}), protocol: p.protocol, port: p.port, targetPort: p.targetPort,
        ...(p.nodePort !== null ? { nodePort: p.nodePort } : {}),
      })),
      selector: s.selector,
      sessionAffinity: s.affinity === null ? 'None' : 'ClientIP',
      ...(s.affinity === null ? {} : { sessionAffinityConfig: { clientIP: { timeoutSeconds: s.affinity } } }),
      internalTrafficPolicy: s.itp,
      ...(s.type === 'ClusterIP' ? {} : { externalTrafficPolicy: s.etp }),
      externalIPs: [...s.externalIPs.map((e) => writeIp(e.octets, e.form)), ...s.externalIPv6],
      ...(s.sourceRanges.length ? { loadBalancerSourceRanges: s.sourceRanges } : {}),
    };
    items.push({
      apiVersion: 'v1', kind: 'Service', metadata: { namespace: s.ns, name: s.name }, spec,
      status: { loadBalancer: s.ingress ? { ingress: [{ ip: writeIp(s.ingress.octets, s.ingress.form) }] } : {} },
    });
    for (const sl of s.slices) {
      items.push({
        apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
        metadata: { namespace: s.ns, name: `${s.name}-${sl.suffix}`, labels: { 'kubernetes.io/service-name': s.name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
        addressType: sl.ipv6 ? 'IPv6' : 'IPv4',
        endpoints: sl.endpoints.map((e) => ({
          addresses: [sl.ipv6 ? `2001:db8:244::${e.octets[3].toString(16)}` : writeIp(e.octets, e.form)],
          conditions: { ready: e.ready, serving: e.serving, terminating: e.terminating },
          ...(e.node ? { nodeName: e.node } : {}),
          ...(e.pod ? { targetRef: { kind: 'Pod', namespace: s.ns, name: e.pod } } : {}),
        })),
        ports: sl.ports.map((p) => ({ name: s.ports[p.of].name, protocol: s.ports[p.of].protocol, port: p.port })),
      });
    }
  }
  return { kind: 'List', items };
}

/** What kube-proxy's IPv4 proxier makes of the model: its cluster IPs and every endpoint it could use. */
export interface Expected {
  clusterIPs: Set<string>;
  /** Every IPv4 endpoint `ip:port` of the input (DNAT targets must be among them). */
  endpoints: Set<string>;
}

export function expectedOf(model: readonly ServiceModel[]): Expected {
  const clusterIPs = new Set<string>();
  const endpoints = new Set<string>();
  for (const s of model) {
    clusterIPs.add(s.clusterOctets.join('.'));
    for (const sl of s.slices) {
      if (sl.ipv6) continue;
      for (const e of sl.endpoints) for (const p of sl.ports) endpoints.add(`${e.octets.join('.')}:${p.port}`);
    }
  }
  return { clusterIPs, endpoints };
}

// ---- mutations of a List ----

export type Outcome = 'error' | 'ok';
/** A mutation that found nothing to change (no EndpointSlice, no endpoint): the case is as valid as before. */
export type Applied = Outcome | 'not applicable';

export interface Mutation {
  /** Category for the report table. */
  category: string;
  /** What was done, for a failure message. */
  what: string;
  /** Changes the List in place and says what the reader must now do; may change what is expected. */
  apply(list: { items: Json[] }, expected: Expected, model: readonly ServiceModel[]): Applied;
  /**
   * The object it changes (`Service 0`, `EndpointSlice 1`), or null when there is none: two
   * mutations of one object may undo each other, so such pairs are not judged.
   */
  target(list: { items: Json[] }, model: readonly ServiceModel[]): string | null;
}

type ServiceItem = { metadata: Json; spec: Json; status: Json };
type SliceItem = { metadata: Json & { labels: Record<string, string> }; endpoints: Json[]; ports: Json[]; addressType: string };
const sliceItems = (l: { items: Json[] }) => l.items.filter((i) => i.kind === 'EndpointSlice') as unknown as SliceItem[];
const pick = <T>(xs: readonly T[], n: number): T => xs[n % xs.length];


export const mutationArb: fc.Arbitrary<Mutation> = fc.tuple(fc.nat(), fc.nat(), fc.constantFrom(...HOSTILE_TEXT), fc.constantFrom(...BAD_IP_FORMS), fc.nat({ max: 29 }), ipv6Arb)
  .map(([n, m, text, badForm, which, v6]): Mutation => {
    /** The n-th Service of the model (duplicates a mutation appends come after them). */
    const svc = (category: string, what: string, f: (s: ServiceItem, expected: Expected, model: readonly ServiceModel[]) => Applied): Mutation => ({
      category, what,
      apply: (l, expected, model) => {
        const s = l.items.filter((i) => i.kind === 'Service')[n % model.length] as unknown as ServiceItem;
        return f(s, expected, model);
      },
      target: (_l, model) => `Service ${n % model.length}`,
    });
    /** The n-th EndpointSlice; with none there is nothing to break and the List stays valid. */
    const slice = (category: string, what: string, f: (s: SliceItem) => Applied): Mutation => ({
      category, what,
      apply: (l) => {
        const all = sliceItems(l);
        return all.length === 0 ? 'not applicable' : f(pick(all, n));
      },
      target: (l) => (sliceItems(l).length === 0 ? null : `EndpointSlice ${n % sliceItems(l).length}`),
    });
    const ports = (s: ServiceItem) => s.spec.ports as Json[];
    const bad = (octets: number[]) => writeIp(octets, badForm);
    const badNumbers: unknown[] = [0, -1, 65536, 1.5, '80', 2 ** 53, 1e21, null];
    switch (which) {
      case 0: return svc('namespace', `metadata.namespace = ${JSON.stringify(text)}`, (s) => {
        s.metadata.namespace = text;
        return isDns1123Label(text) ? 'ok' : 'error';
      });
      case 1: return svc('service name', `metadata.name = ${JSON.stringify(text)}`, (s) => {
        s.metadata.name = text === '' ? '9lives' : text;
        return 'error';
      });
      case 2: return svc('port name', `spec.ports[*].name = ${JSON.stringify(text)}`, (s) => {
        pick(ports(s), m).name = text;
        // An empty name is allowed on a Service's only port.
        return text === '' && ports(s).length === 1 ? 'ok' : 'error';
      });
      case 3: return svc('port name', 'spec.ports[*].name = the reported iptables injection', (s) => {
        pick(ports(s), m).name = PORT_NAME_INJECTION;
        return 'error';
      });
      case 4: return svc('source range', 'spec.loadBalancerSourceRanges += the reported nft injection', (s) => {
        s.spec.loadBalancerSourceRanges = [...((s.spec.loadBalancerSourceRanges as string[] | undefined) ?? []), SOURCE_RANGE_INJECTION];
        return 'error';
      });
      case 5: return svc('source range', 'spec.loadBalancerSourceRanges += a bad CIDR', (s) => {
        s.spec.loadBalancerSourceRanges = [pick(['10.0.0.0/33', '10.0.0.0', '0x0a.0.0.0/8', '10.0.0.0/8}', '10.0.0.0/8 #x', text || '/'], m)];
        return 'error';
      });
      case 6: return svc(`IP form: ${badForm}`, `spec.clusterIP = ${badForm}`, (s) => {
        const ip = bad([10, 96, 200, 1 + (m % 200)]);
        s.spec.clusterIP = ip;
        s.spec.clusterIPs = [ip];
        return 'error';
      });
      case 7: return svc(`IP form: ${badForm}`, `spec.externalIPs += ${badForm}`, (s) => {
        s.spec.externalIPs = [...(s.spec.externalIPs as string[]), bad([192, 0, 2, 200])];
        return 'error';
      });
      case 8: return svc(`IP form: ${badForm}`, `status.loadBalancer.ingress[0].ip = ${badForm}`, (s) => {
        s.status.loadBalancer = { ingress: [{ ip: bad([198, 51, 100, 200]) }] };
        // An ingress entry without an IP (hostname only) is valid.
        return badForm === 'empty' ? 'ok' : 'error';
      });
      case 9: return slice(`IP form: ${badForm}`, `endpoints[*].addresses[0] = ${badForm}`, (sl) => {
        if (sl.endpoints.length === 0) return 'not applicable';
        pick(sl.endpoints, m).addresses = [bad([10, 244, 9, 9])];
        return 'error';
      });
      case 10: return svc('special address', 'spec.externalIPs += a loopback, link-local, unspecified or multicast address', (s) => {
        s.spec.externalIPs = [pick(['127.0.0.1', '169.254.169.254', '0.0.0.0', '224.0.0.251', '::ffff:127.0.0.1', '::1', 'fe80::1'], m)];
        return 'error';
      });
      case 11: return svc('IPv6', 'spec.clusterIP = an IPv6 address (the IPv4 proxier skips the Service)', (s, expected, model) => {
        s.spec.clusterIP = v6;
        s.spec.clusterIPs = [v6];
        expected.clusterIPs.delete(model[n % model.length].clusterOctets.join('.'));
        return 'ok';
      });
      case 12: return slice('IPv6', 'an IPv6 address in an IPv4 EndpointSlice', (sl) => {
        if (sl.endpoints.length === 0 || sl.addressType !== 'IPv4') return 'not applicable';
        pick(sl.endpoints, m).addresses = [v6];
        return 'error';
      });
      case 13: return svc('IPv6', 'spec.externalIPs and source ranges += IPv6 (ignored)', (s) => {
        s.spec.externalIPs = [...(s.spec.externalIPs as string[]), v6];
        if (s.spec.type === 'LoadBalancer') s.spec.loadBalancerSourceRanges = [...((s.spec.loadBalancerSourceRanges as string[] | undefined) ?? []), '2001:db8::/48'];
        return 'ok';
      });
      case 14: return {
        category: 'duplicates', what: 'a Service listed twice',
        target: (_l, model) => `Service ${n % model.length}`,
        apply: (l, _e, model) => {
          l.items.push(structuredClone(l.items.filter((i) => i.kind === 'Service')[n % model.length]));
          return 'error';
        },
      };
      case 15: return {
        category: 'duplicates', what: 'an EndpointSlice listed twice',
        target: (l) => (sliceItems(l).length === 0 ? null : `EndpointSlice ${n % sliceItems(l).length}`),
        apply: (l) => {
          const all = sliceItems(l);
          if (all.length === 0) return 'not applicable';
          l.items.push(structuredClone(pick(all, n)) as unknown as Json);
          return 'error';
        },
      };
      case 16: return svc('duplicates', 'two ports with one name', (s) => {
        const first = pick(ports(s), m);
        if (!first.name) first.name = 'dup';
        ports(s).push({ ...first, port: 1 + ((first.port as number) % 65535), nodePort: undefined });
        return 'error';
      });
      case 17: return svc('duplicates', 'two ports with one protocol and number', (s) => {
        const first = ports(s)[0];
        if (!first.name) first.name = 'first';
        ports(s).push({ ...first, name: 'other-name', nodePort: undefined });
        return 'error';
      });
      case 18: return slice('duplicates', 'two EndpointSlice ports with one name', (sl) => {
        if (sl.ports.length === 0) return 'not applicable';
        sl.ports.push({ ...sl.ports[0], port: 7 });
        return 'error';
      });
      case 19: return svc('port numbers', 'spec.ports[*].port out of range', (s) => {
        pick(ports(s), m).port = pick(badNumbers, n);
        return 'error';
      });
      case 20: return svc('port numbers', 'spec.ports[*].targetPort out of range or not an IANA name', (s) => {
        pick(ports(s), m).targetPort = pick([0, 70000, -5, 1.5, 'HTTP', 'a--b', 'sixteen-chars-xx', '123', text || 'x y'], n);
        return 'error';
      });
      case 21: return svc('port numbers', 'spec.sessionAffinityConfig timeout out of range', (s) => {
        s.spec.sessionAffinity = 'ClientIP';
        s.spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: pick([0, 86401, -1, '60', 1.5], m) } };
        return 'error';
      });
      case 22: return slice('port numbers', 'an EndpointSlice port out of range', (sl) => {
        if (sl.ports.length === 0) return 'not applicable';
        sl.ports[0].port = pick([0, 65536, -1, 1.5, '8080'], m);
        return 'error';
      });
      case 23: return slice('node and pod names', `endpoints[*].nodeName or targetRef.name = ${JSON.stringify(text)}`, (sl) => {
        if (sl.endpoints.length === 0) return 'not applicable';
        const e = pick(sl.endpoints, m);
        if (m % 2 === 0) e.nodeName = text;
        else e.targetRef = { kind: 'Pod', name: text };
        return isDns1123Subdomain(text) ? 'ok' : 'error';
      });
      case 24: return svc('labels', `spec.selector key or value built from ${JSON.stringify(text)}`, (s) => {
        s.spec.selector = m % 2 === 0 ? { [`${text}/`]: 'v' } : { app: `${text}"\n` };
        return 'error';
      });
      case 25: return slice('labels', `kubernetes.io/service-name built from ${JSON.stringify(text)}`, (sl) => {
        sl.metadata.labels['kubernetes.io/service-name'] = `${text}\n"`;
        return 'error';
      });
      case 26: return slice('names', `EndpointSlice metadata.name built from ${JSON.stringify(text)}`, (sl) => {
        sl.metadata.name = isDns1123Subdomain(text) || text === '' ? `${text}"` : text;
        return 'error';
      });
      case 27: return svc('types', 'protocol, type or policy of the wrong kind', (s) => {
        if (m % 3 === 0) ports(s)[0].protocol = pick(['tcp', 'ICMP', '', 6], n);
        else if (m % 3 === 1) s.spec.type = pick(['Foo', 'clusterip', 1], n);
        else s.spec.externalTrafficPolicy = 'Local"';
        return 'error';
      });
      case 28: return svc('port name', `a second port named ${JSON.stringify(text)}`, (s) => {
        if (!ports(s)[0].name) ports(s)[0].name = 'zeroth';
        ports(s).push({ name: text, protocol: 'UDP', port: 9 });
        return 'error';
      });
      default: return svc('IPv6', 'dual stack, IPv6 first: the IPv4 entry of clusterIPs is used', (s) => {
        const v4 = (s.spec.clusterIPs as string[]).find((ip) => !ip.startsWith('2001:'));
        if (!v4) return 'not applicable';
        s.spec.clusterIP = v6;
        s.spec.clusterIPs = [v6, v4];
        return 'ok';
      });
    }
  });

// ---- hostile ServicePortInfo, straight to the generators ----

export interface PortsCase {
  ports: ServicePortInfo[];
  outcome: Applied;
  category: string;
  what: string;
  expectedClusterIPs: Set<string>;
  /** Every IPv4 endpoint `ip:port` of the input. */
  expectedEndpoints: Set<string>;
}

const endpointInfoArb = fc.record({
  octets: fc.tuple(fc.constant(10), fc.constant(244), fc.integer({ min: 0, max: 3 }), octetArb).map((t) => [...t]),
  form: formArb,
  port: fc.integer({ min: 1, max: 65535 }),
  ready: fc.boolean(),
  serving: fc.boolean(),
  terminating: fc.boolean(),
  isLocal: fc.boolean(),
});

/** Valid service ports (one per service, odd address forms included) plus one mutation. */
export const portsCaseArb: fc.Arbitrary<PortsCase> = fc.tuple(
  fc.uniqueArray(fc.tuple(namespaceArb, serviceNameArb, fc.option(portNameArb, { nil: '' })), { minLength: 1, maxLength: 3, selector: ([a, b]) => `${a}/${b}` }),
  fc.array(fc.record({
    type: fc.constantFrom<ServicePortInfo['type']>('ClusterIP', 'NodePort', 'LoadBalancer'),
    protocol: protocolArb,
    form: formArb,
    port: fc.integer({ min: 1, max: 65535 }),
    lb: fc.boolean(),
    ranges: fc.uniqueArray(fc.constantFrom(...SOURCE_RANGE_FORMS), { maxLength: 2 }),
    affinity: fc.boolean(),
    etp: fc.constantFrom<'Cluster' | 'Local'>('Cluster', 'Local'),
    itp: fc.constantFrom<'Cluster' | 'Local'>('Cluster', 'Local'),
    endpoints: fc.uniqueArray(endpointInfoArb, { maxLength: 3, selector: (e) => `${e.octets.join('.')}:${e.port}` }),
  }), { minLength: 3, maxLength: 3 }),
  // A quarter of the cases are left valid (odd address forms only).
  fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 17 }) }),
  fc.nat(), fc.constantFrom(...HOSTILE_TEXT), fc.constantFrom(...BAD_IP_FORMS),
).map(([names, shapes, which, m, text, badForm]): PortsCase => {
  const clusterIPOf = (i: number) => `10.96.${i}.${1 + (shapes[i].port % 250)}`;
  const expectedClusterIPs = new Set(names.map((_, i) => clusterIPOf(i)));
  const expectedEndpoints = new Set(shapes.flatMap((s) => s.endpoints.map((e) => `${e.octets.join('.')}:${e.port}`)));
  const ports: ServicePortInfo[] = names.map(([ns, name, portName], i) => {
    const s = shapes[i];
    const octets = clusterIPOf(i).split('.').map(Number);
    return {
      namespace: ns, name, portName, servicePortName: portName ? `${ns}/${name}:${portName}` : `${ns}/${name}`,
      protocol: s.protocol, type: s.type, clusterIP: writeIp(octets, s.form, 2), port: s.port,
      nodePort: s.type === 'ClusterIP' ? null : 30000 + i,
      externalIPs: i === 1 ? [writeIp([192, 0, 2, 7], s.form), '2001:db8::7'] : [],
      loadBalancerIPs: s.type === 'LoadBalancer' && s.lb ? [writeIp([198, 51, 100, 20 + i], s.form)] : [],
      loadBalancerSourceRanges: s.type === 'LoadBalancer' ? s.ranges : [],
      sessionAffinity: s.affinity ? 'ClientIP' : 'None', sessionAffinityTimeoutSeconds: 10800,
      externalTrafficPolicy: s.etp, internalTrafficPolicy: s.itp,
      endpoints: s.endpoints.map((e): EndpointInfo => ({
        ip: writeIp(e.octets, e.form), port: e.port, ready: e.ready, serving: e.serving, terminating: e.terminating,
        nodeName: null, podName: null, isLocal: e.isLocal,
      })),
    };
  });
  const p = ports[m % ports.length] as unknown as Record<string, unknown>;
  const set = (category: string, what: string, outcome: Applied, f: () => void): PortsCase => {
    f();
    return { ports, outcome, category, what, expectedClusterIPs, expectedEndpoints };
  };
  const eps = p.endpoints as Record<string, unknown>[];
  switch (which) {
    case 0: return { ports, outcome: 'ok', category: 'valid (odd address forms only)', what: 'no mutation', expectedClusterIPs, expectedEndpoints };
    case 1: return set('namespace', `namespace = ${JSON.stringify(text)}`, 'error', () => { p.namespace = isDns1123Label(text) ? `${text}"` : text; });
    case 2: return set('service name', `name = ${JSON.stringify(text)}`, 'error', () => { p.name = text || '0x'; });
    case 3: return set('port name', 'portName and servicePortName = the reported iptables injection', 'error', () => {
      p.portName = PORT_NAME_INJECTION;
      p.servicePortName = `${p.namespace}/${p.name}:${PORT_NAME_INJECTION}`;
    });
    case 4: return set('port name', `servicePortName = ${JSON.stringify(text)} (not namespace/name:port)`, 'error', () => { p.servicePortName = `${p.servicePortName}${text || 'x'}`; });
    case 5: return set('source range', 'loadBalancerSourceRanges += the reported nft injection', 'error', () => {
      p.loadBalancerSourceRanges = [...(p.loadBalancerSourceRanges as string[]), SOURCE_RANGE_INJECTION];
    });
    // An empty cluster IP is a Service without one yet: skipped, like a headless one.
    case 6: return set(`IP form: ${badForm}`, `clusterIP = ${badForm}`, badForm === 'empty' ? 'ok' : 'error', () => {
      p.clusterIP = writeIp([10, 96, 9, 9], badForm);
      expectedClusterIPs.delete(clusterIPOf(m % ports.length));
    });
    case 7: return set(`IP form: ${badForm}`, `externalIPs += ${badForm}`, 'error', () => { p.externalIPs = [writeIp([192, 0, 2, 9], badForm)]; });
    case 8: return set(`IP form: ${badForm}`, `endpoints[*].ip = ${badForm}`, eps.length ? 'error' : 'not applicable', () => { if (eps.length) eps[0].ip = writeIp([10, 244, 9, 9], badForm); });
    case 9: return set('IPv6', 'clusterIP = IPv6, None or empty (skipped)', 'ok', () => {
      p.clusterIP = pick(['2001:db8::96', 'None', ''], m);
      expectedClusterIPs.delete(clusterIPOf(m % ports.length));
    });
    case 10: return set('port numbers', 'port, nodePort or endpoint port out of range', 'error', () => {
      const v = pick([0, -1, 65536, 1.5, '80', 1e21, Number.NaN], m);
      if (m % 3 === 0) p.port = v;
      else if (m % 3 === 1) p.nodePort = v;
      else if (eps.length) eps[0].port = v;
      else p.port = v;
    });
    case 11: return set('port numbers', 'sessionAffinityTimeoutSeconds out of range', 'error', () => { p.sessionAffinityTimeoutSeconds = pick([0, 86401, -1, '10800', 1.5], m); });
    case 12: return set('duplicates', 'one service port twice', 'error', () => { ports.push(structuredClone(ports[m % ports.length])); });
    case 13: return set('duplicates', 'one endpoint twice', eps.length ? 'error' : 'not applicable', () => { if (eps.length) eps.push({ ...eps[0] }); });
    case 14: return set('types', 'protocol, type, policy or flag of the wrong kind', 'error', () => {
      if (m % 4 === 0) p.protocol = pick(['tcp', 'ICMP', '', 'TCP"'], m);
      else if (m % 4 === 1) p.type = 'Foo';
      else if (m % 4 === 2) p.externalIPs = '192.0.2.1';
      else if (eps.length) eps[0].ready = 'yes';
      else p.internalTrafficPolicy = 'Local\n';
    });
    case 15: return set('IPv6', 'an IPv6 endpoint and external IP (dropped)', 'ok', () => {
      eps.push({ ip: '2001:db8::5', port: 80, ready: true, serving: true, terminating: false, nodeName: null, podName: null, isLocal: false });
      p.externalIPs = [...(p.externalIPs as string[]), '2001:db8::6'];
    });
    case 16: return set('IP form: injected-brace', 'loadBalancerIPs += an address with an nft block after it', 'error', () => {
      p.loadBalancerIPs = ['198.51.100.1 } ; add table ip pwned ; #'];
    });
    default: return set('source range', 'loadBalancerSourceRanges += a bad CIDR', 'error', () => {
      p.loadBalancerSourceRanges = [pick(['10.0.0.0/33', '10.0.0.0', '0x0a.0.0.0/8', '10.0.0.0/8}', text || '/', 42], m)];
    });
  }
});
