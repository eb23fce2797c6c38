import { describe, expect, it } from 'vitest';
import type { Pod } from '../../lib/lab/types.ts';
import { podPathHops, type PodPath } from '../../lib/notebook/pod-path.ts';
import { inPod, onNode } from '../../lib/notebook/run-on.ts';
import { parseIpRouteJson } from '../../lib/parse/ip.ts';

const pod = (name: string, ip: string, node: string): Pod => ({ namespace: 'default', name, ip, node, labels: {}, ready: true });
const route = (json: object) => parseIpRouteJson(JSON.stringify([json]))[0];

describe('podPathHops: the hop table of notebook 02', () => {
  const base: PodPath = {
    from: pod('curl', '10.244.1.4', 'w1'), to: pod('web', '10.244.2.2', 'w2'), gateway: '10.244.1.1', fromVeth: 'veth89ec6ce4',
    first: route({ dst: '10.244.2.2', gateway: '172.18.0.4', dev: 'eth0', prefsrc: '172.18.0.3', uid: 0 }),
    last: route({ dst: '10.244.2.2', dev: 'veth95f24ef8', prefsrc: '10.244.2.1', uid: 0 }),
    toBlock: '10.244.2.0/24', arrivesOn: 'eth0', port: 8080,
  };

  it('five hops across nodes: pod, its node twice, the other node, the other pod', () => {
    expect(podPathHops(base)).toEqual([
      [1, 'pod curl', 'eth0, default route to the gateway 10.244.1.1'],
      [2, 'node w1', 'arrives on veth89ec6ce4, which holds 10.244.1.1/32'],
      [3, 'node w1', '10.244.2.2 is in 10.244.2.0/24: via 172.18.0.4 dev eth0'],
      [4, 'node w2', 'arrives on eth0; 10.244.2.2 dev veth95f24ef8 (host route)'],
      [5, 'pod web', 'arrives on its eth0, answered by the pod listening on 8080'],
    ]);
  });

  it('four when both pods share a node: the packet never leaves it', () => {
    const near = route({ dst: '10.244.1.3', dev: 'veth6a9886ba', prefsrc: '10.244.1.1', uid: 0 });
    const hops = podPathHops({ ...base, to: pod('web', '10.244.1.3', 'w1'), first: near, last: near, toBlock: '10.244.1.0/24' });
    expect(hops.map((h) => h[1])).toEqual(['pod curl', 'node w1', 'node w1', 'pod web']);
    expect(hops[2][2]).toBe('10.244.1.3 dev veth6a9886ba (host route): the pod is on this node, so the packet never leaves it');
  });
});

describe('onNode and inPod: where a printed command runs', () => {
  it('netns: the node\'s or the pod\'s namespace', () => {
    const lab = { name: 'nb01', backend: 'netns' as const };
    expect(onNode(lab, 'nb01-worker')).toBe('ip netns exec kn-nb01.nb01-worker');
    expect(inPod(lab, 'curl-x5dgwx7cm9-6sb7d', 'curl')).toBe('ip netns exec kn-nb01.pod.curl-x5dgwx7cm9-6sb7d');
  });

  it('kind: the node\'s container, kubectl exec into the pod\'s container', () => {
    const lab = { name: 'nb02', backend: 'kind' as const };
    expect(onNode(lab, 'nb02-worker')).toBe('docker exec nb02-worker');
    expect(inPod(lab, 'curl-abc', 'curl')).toBe('kubectl --context kind-nb02 exec curl-abc -c curl --');
  });
});
