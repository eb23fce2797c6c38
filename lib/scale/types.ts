import type { IptablesBackend } from '../proxy/iptables-backend.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import type { Provenance } from '../provenance/index.ts';
import type { ModeCounts } from '../sim/counts.ts';
import type { CostPrediction, LineFit, ModeCostModel, Percentiles } from '../sim/cost-model.ts';

export interface ScaleOptions {
  modes: ProxyMode[];
  /**
   * The iptables backends iptables and ipvs modes are run on, each a sweep of its own
   * (default ['nft'], what Debian's `iptables` is); nftables mode uses none.
   */
  iptablesBackends?: IptablesBackend[];
  /** Service counts, one step per mode and count. */
  services: number[];
  /** Endpoints per service (≥ 1). */
  endpoints: number;
  /** Connections per latency target (default 200). */
  samples?: number;
  /** Timed repetitions of the full sync and of the one-endpoint change; the median is kept (default 3). */
  repeats?: number;
  /** No new repetition starts once a measurement has taken this long in a step (default 60,000 ms); one always runs. */
  repeatBudgetMs?: number;
  /**
   * A step is not started when the sync times measured so far predict its full sync would take
   * longer than this (default 60,000 ms); it is reported in skippedSteps with the estimate.
   */
  maxSyncMs?: number;
  /** maxSyncMs for some variants (`iptables-nft`: 60,000), where one is much slower than the rest. */
  maxSyncMsByVariant?: Record<string, number>;
  /** Sizes up to this many services are fitted; the model predicts the rest (default 1000). */
  fitMaxServices?: number;
  /**
   * The cluster CIDR pods are addressed from. Default: kind's 10.244.0.0/16, or 10.128.0.0/9 when
   * the largest step's pods do not fit in it (as a big cluster would be configured).
   */
  podSubnet?: string;
  /** Namespace name prefix (`<prefix>-<pid>-<hex>`); default `kn-scale`. */
  netnsPrefix?: string;
  /** Stops the sweep between commands; the step's namespace is deleted before the call rejects. */
  signal?: AbortSignal;
  onProgress?: (event: ScaleProgress) => void;
  /** Prints every command the sweep runs. */
  echo?: (command: string) => void;
}

export type ScalePhase = 'step' | 'sync' | 'counts' | 'change' | 'latency' | 'done';

export interface ScaleProgress {
  /** 1-based step number and the total. */
  step: number;
  steps: number;
  mode: ProxyMode;
  /** The mode, or the mode on its iptables backend (`iptables-legacy`). */
  variant: string;
  services: number;
  endpoints: number;
  phase: ScalePhase;
  /** What it is doing, in a line. */
  message: string;
  netns?: string;
}

/** One latency target: a service, its ClusterIP and where in kube-proxy's order it sits. */
export interface LatencyMeasurement extends Percentiles {
  service: string;
  /** 1-based position among the services in KUBE-SERVICES (iptables) or the order kube-proxy adds map elements. */
  position: number;
  clusterIP: string;
  port: number;
  /** Connections timed (warm-up connections excluded). */
  samples: number;
  /** Every connection, warm-up included, reached an endpoint of this service and never the ClusterIP itself. */
  dnatVerified: true;
  /** Distinct endpoints the connections reached. */
  endpointsReached: number;
}

export interface Skipped {
  what: string;
  reason: string;
}

/** What the kernel holds after a full sync, counted from what it prints (parsed by lib/parse). */
export interface KernelCounts {
  iptables?: { nat: { chains: number; rules: number }; filter: { chains: number; rules: number } };
  nftables?: { chains: number; rules: number; sets: number; maps: number; elements: number };
  ipvs?: {
    ipsetMembers: Record<string, number>;
    iptables: { nat: { chains: number; rules: number }; filter: { chains: number; rules: number } };
    /** null when the kernel has no IP_VS. */
    virtualServers: number | null;
    realServers: number | null;
  };
}

export interface MeasuredPoint {
  provenance: Provenance;
  /** Median ms of the full syncs: the first into an empty namespace, the rest over the rules it wrote (kube-proxy's periodic full sync). */
  syncMs: number;
  /** Every full sync timed, the first first. */
  syncSamplesMs: number[];
  /** The first full sync, into an empty namespace (syncSamplesMs[0]). */
  firstSyncMs: number;
  /** Per tool, for modes that run several (ipvs). */
  syncPartsMs: Record<string, number>;
  /** Median ms of applying a one-endpoint change; null when it could not be measured. */
  changeMs: number | null;
  changeSamplesMs: number[];
  /** How the change was applied, in words. */
  changeMethod: string;
  /** ms to start the tools through `ip netns exec` with empty input: part of every time above. */
  toolStartMs: number;
  firstServiceLatencyUs: LatencyMeasurement | null;
  lastServiceLatencyUs: LatencyMeasurement | null;
  /** Kernel counts after the full sync. */
  kernel: KernelCounts;
  /** kernel equals predicted.counts, field by field (the fields the kernel could show). */
  countsMatch: boolean;
  skipped: Skipped[];
  netns: string;
  /** Wall time of the whole step. */
  stepMs: number;
}

export interface PredictedPoint {
  provenance: Provenance;
  /** lib/sim's closed-form counts for this mode. */
  counts: ModeCounts;
  syncMs: number | null;
  changeMs: number | null;
  firstServiceLatencyUs: Percentiles | null;
  lastServiceLatencyUs: Percentiles | null;
  /** This size was one the model was fitted on (an in-sample value, not a prediction of the unseen). */
  inFit: boolean;
  /** The model's inputs at this size. */
  x: CostPrediction['x'];
}

export interface ScalePoint {
  mode: ProxyMode;
  /** The iptables backend the rules were loaded with; null in nftables mode. */
  iptablesBackend: IptablesBackend | null;
  /** `iptables-legacy`, `iptables-nft`, `nftables`, `ipvs-nft` …: what a table row or a plot series is. */
  variant: string;
  services: number;
  endpoints: number;
  measured: MeasuredPoint;
  predicted: PredictedPoint;
}

export interface ScaleModel {
  /** Points with at most this many services were fitted. */
  fitMaxServices: number;
  /** What each line's x is. */
  x: { syncMs: string; changeMs: string; latency: string };
  /** Keyed by variant. */
  modes: Partial<Record<string, ModeCostModel>>;
}

/** A step the sweep did not start, and why: nothing about it was measured. */
export interface SkippedStep {
  mode: ProxyMode;
  variant: string;
  services: number;
  reason: string;
  /** The extrapolated full-sync time that ruled it out. */
  estimatedSyncMs: number;
}

export interface ScaleResult {
  points: ScalePoint[];
  skippedSteps: SkippedStep[];
  model: ScaleModel;
  options: { modes: ProxyMode[]; iptablesBackends: IptablesBackend[]; services: number[]; endpoints: number; samples: number; repeats: number; repeatBudgetMs: number; maxSyncMs: number; maxSyncMsByVariant: Record<string, number>; podSubnet: string; node: string; nodeIP: string; clientIP: string };
  kernel: string;
  tools: Record<string, string>;
  at: string;
  durationMs: number;
}

export type { LineFit, Percentiles };
