export * from './runner.ts';
export * from './packages.ts';
export * from './scratch-netns.ts';
export * from './process.ts';
export * from './owned.ts';
