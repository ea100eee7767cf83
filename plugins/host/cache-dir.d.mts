/** Types of cache-dir.mjs (plain JS: bin/tsflow.mjs imports it before the bundle). */
export function userCacheDir(name: string): string;
export function privateDir(dir: string): string | undefined;
export function pruneCache(dir: string, current: string, keep: number, suffix: string): void;
export function writeCacheFile(file: string, data: string | Uint8Array, keep: number, suffix: string): boolean;
export function fnv1a(s: string): string;
