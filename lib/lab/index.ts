export * from './types.ts';
export * from './manifests.ts';
