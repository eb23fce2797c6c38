import type { ProxyMode } from '../proxy/modes.ts';

/**
 * One look for every figure. Measured data is drawn filled (bars, dots) in MEASURED; predictions
 * are drawn as black outlines (ticks, rules, lines), so the two never read as the same thing.
 */
export const THEME = {
  measured: '#4269d0',
  predicted: '#1b1b1b',
  interval: '#8a8a8a',
  muted: '#555555',
  background: 'white',
  /** What browsers use; toPng maps the generic `sans-serif` to the bundled DejaVu Sans. */
  fontFamily: 'system-ui, sans-serif',
  fontSize: 10,
  width: 640,
} as const;

/** Fixed colours per proxy mode (Observable 10), so a mode keeps its colour across figures. */
export const MODE_COLORS: Readonly<Record<ProxyMode, string>> = {
  iptables: '#4269d0',
  ipvs: '#efb118',
  nftables: '#ff725c',
};
