// Property tests draw from one fixed seed, so `npm test` (and CI) judges the same cases every run;
// KUBE_NETLAB_FUZZ_SEED=random explores new ones (a failure prints its seed to replay with).
import fc from 'fast-check';

const wanted = process.env.KUBE_NETLAB_FUZZ_SEED ?? '20261206';
if (wanted !== 'random') {
  const seed = Number(wanted);
  if (!Number.isInteger(seed)) throw new Error(`KUBE_NETLAB_FUZZ_SEED must be a whole number or "random", got ${JSON.stringify(wanted)}`);
  fc.configureGlobal({ seed });
}
