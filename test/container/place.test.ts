import { describe, expect, it } from 'vitest';
import {
  containerFlags, detectContainer, effectiveCapabilities, missingContainerFlags, systemProbe, wherePlace, type PlaceProbe,
} from '../../lib/container/index.ts';

// What /proc showed inside containers of the kit's image under Debian's docker.io 20.10
// (test/container.test.ts runs the real thing): the capability sets of `docker run` with no
// options and with the two --cap-add, the root overlay and the read-only /proc/sys.
const DEFAULT_CAPS = 'CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n';
const LAB_CAPS = 'CapInh:\t0000000000000000\nCapPrm:\t00000000a82435fb\nCapEff:\t00000000a82435fb\n';
const OVERLAY_ROOT = '349 280 0:55 / / rw,relatime master:26 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B\n'
  + '284 350 0:58 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw\n';
const EXT4_ROOT = '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n22 27 0:21 / /proc rw,relatime - proc proc rw\n';
const CGROUP_V1_DOCKER = '9:name=systemd:/docker/7f9b9e1f4d66e8b3b62703cd39d31e3a7a50dfc1f38cbe72799a5b65ab010506\n';

function probe(over: { files?: Record<string, string>; sysctl?: ReturnType<PlaceProbe['writable']>; env?: Record<string, string>; kernel?: string }): PlaceProbe {
  const files = over.files ?? {};
  return {
    exists: (p) => p in files,
    read: (p) => files[p] ?? null,
    writable: () => over.sysctl ?? 'yes',
    env: over.env ?? {},
    kernel: over.kernel ?? '6.18.0',
  };
}

const dockerFiles = (caps: string) => ({ '/.dockerenv': '', '/proc/self/mountinfo': OVERLAY_ROOT, '/proc/1/cgroup': '0::/\n', '/proc/self/status': caps });

describe('where the kit runs', () => {
  it('reads CAP_NET_ADMIN and CAP_SYS_ADMIN from the effective set', () => {
    expect(effectiveCapabilities(DEFAULT_CAPS)).toBe(0xa80425fbn);
    expect(effectiveCapabilities('Name:\tnode\n')).toBeNull();
    const flags = (caps: string, sysctl: 'yes' | 'read-only') => containerFlags(probe({ files: dockerFiles(caps), sysctl })).map((f) => f.inEffect);
    expect(flags(DEFAULT_CAPS, 'read-only')).toEqual([false, false, false]);
    expect(flags(LAB_CAPS, 'read-only')).toEqual([true, true, false]);
    expect(flags(LAB_CAPS, 'yes')).toEqual([true, true, true]);
  });

  it('knows a Docker container by /.dockerenv with an overlay root or a docker cgroup, not by /.dockerenv alone', () => {
    expect(detectContainer(probe({ files: dockerFiles(LAB_CAPS) }))).toEqual({ engine: 'docker', evidence: '/.dockerenv, / on overlay' });
    expect(detectContainer(probe({ files: { '/.dockerenv': '', '/proc/self/mountinfo': EXT4_ROOT, '/proc/1/cgroup': CGROUP_V1_DOCKER } }))?.engine).toBe('docker');
    // A machine made from a Docker image keeps the file but runs on a disk of its own.
    expect(detectContainer(probe({ files: { '/.dockerenv': '', '/proc/self/mountinfo': EXT4_ROOT, '/proc/1/cgroup': '0::/\n' } }))).toBeNull();
    expect(detectContainer(probe({ files: { '/run/.containerenv': '', '/proc/self/mountinfo': OVERLAY_ROOT } }))?.engine).toBe('podman');
    expect(detectContainer(probe({ env: { container: 'systemd-nspawn' } }))).toEqual({ engine: 'container', evidence: 'container=systemd-nspawn in the environment' });
  });

  it('names the docker run options to add, and nothing when they are all in effect', () => {
    expect(missingContainerFlags(probe({ files: dockerFiles(LAB_CAPS), sysctl: 'yes' }))).toBeNull();
    const one = missingContainerFlags(probe({ files: dockerFiles(LAB_CAPS), sysctl: 'read-only' }));
    expect(one).toMatch(/^this container was started without --security-opt systempaths=unconfined \(\/proc\/sys is mounted read-only\); start it again with `docker run --security-opt systempaths=unconfined …`/);
    const all = missingContainerFlags(probe({ files: dockerFiles(DEFAULT_CAPS), sysctl: 'read-only' }));
    expect(all).toContain('started without --cap-add NET_ADMIN --cap-add SYS_ADMIN --security-opt systempaths=unconfined');
    // Outside a container it recognises, a missing capability is still named, with the options.
    expect(missingContainerFlags(probe({ files: { '/proc/self/status': DEFAULT_CAPS } }))).toMatch(/^CAP_NET_ADMIN is not in the effective set, CAP_SYS_ADMIN is not in the effective set; in a container/);
  });

  it('says whose kernel it is and whether it has IP_VS', () => {
    expect(wherePlace(probe({ kernel: '6.10.14-linuxkit' })).kernelNote).toBe("Docker Desktop's Linux VM");
    expect(wherePlace(probe({ kernel: '5.15.167.4-microsoft-standard-WSL2' })).kernelNote).toBe('WSL 2');
    expect(wherePlace(probe({ files: { '/proc/net/ip_vs': '' } })).ipvs).toBe(true);
    expect(wherePlace(probe({})).flags).toEqual([]);
  });

  const notRoot = process.getuid?.() !== 0;
  it.skipIf(notRoot)(`finds nothing missing on a machine where the netns tests run as root${notRoot ? ' (skipped: not root)' : ''}`, () => {
    // The rest of the suite builds labs here, so a flag reported missing would be a false alarm.
    expect(containerFlags(systemProbe).map((f) => f.inEffect)).toEqual([true, true, true]);
    expect(missingContainerFlags(systemProbe)).toBeNull();
  });
});
