// `doctor`'s section on where the kit runs: in a container, whether each `docker run` option a
// netns lab needs is in effect (a missing one is named as the option to add), and whether the
// kernel (the Docker host's, or Docker Desktop's VM) has IP_VS.
import type { Place } from '../../lib/container/index.ts';
import type { Io } from '../cli.ts';

export function printPlace(io: Io, place: Place): void {
  const kernel = `kernel ${place.kernel}${place.kernelNote ? ` (${place.kernelNote})` : ''}`;
  if (!place.container) {
    io.out(`where:         this machine, not a container; ${kernel}`);
  } else {
    const engine = place.container.engine === 'docker' ? 'a Docker container' : place.container.engine === 'podman' ? 'a Podman container' : 'a container';
    io.out(`where:         ${engine} (${place.container.evidence}); ${kernel}, the container's host's`);
    io.out('  its own network is the host\'s as far as kube-netlab goes: labs live in namespaces they create and never change it');
    for (const f of place.flags) {
      const mark = f.inEffect === true ? 'ok  ' : f.inEffect === false ? 'FAIL' : '??  ';
      io.out(`  ${mark} ${f.flag}: ${f.inEffect === true ? 'in effect' : f.inEffect === false ? 'not in effect' : 'not checked'} (${f.detail})`);
      if (f.inEffect === false) io.out(`       fix: add ${f.flag} to \`docker run\`: ${f.why}`);
    }
  }
  io.out(place.ipvs
    ? '  ok   IP_VS: the kernel has it (/proc/net/ip_vs): IPVS labs get virtual servers and measured traffic'
    : `  no   IP_VS: the kernel has none (/proc/net/ip_vs is absent): IPVS labs load the ipsets and iptables rules but no virtual servers, and their figures are predicted${place.container ? '; a container cannot load kernel modules: `modprobe ip_vs` on the Docker host, where it has one' : '; `modprobe ip_vs` adds it where the kernel has the module'}`);
}
