export * from './types.ts';
export * from './manifests.ts';
export * from './create.ts';
