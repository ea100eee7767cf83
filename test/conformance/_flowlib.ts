/**
 * What generated conformance flows import besides tsflow: Metaflow's `metaflow_test` helpers
 * (assert_equals, assert_exception, TestRetry, ResumeFromHere, is_resumed) in TypeScript.
 */
import { current } from "tsflow";

/** Deep equality as Python's `==` on the values these tests use (lists, dicts, sets, scalars). */
export function assertEquals(expected: unknown, got: unknown): void {
  const norm = (v: unknown): unknown => (v instanceof Set ? [...v].map(norm).sort() : Array.isArray(v) ? v.map(norm) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).sort().map(([k, x]) => [k, norm(x)])) : v);
  const a = JSON.stringify(norm(expected));
  const b = JSON.stringify(norm(got));
  if (a !== b) throw new Error(`expected ${a}, got ${b}`);
}

/** Asserts that `fn` throws an error whose name or message matches `what`. */
export function assertException(fn: () => unknown, what: RegExp): void {
  try {
    fn();
  } catch (e) {
    const err = e as Error;
    if (!what.test(`${err.name} ${(err as { code?: string }).code ?? ""} ${err.message}`)) throw new Error(`expected an error matching ${what}, got ${err.name}: ${err.message}`);
    return;
  }
  throw new Error(`expected an error matching ${what}, nothing was thrown`);
}

/** Python's hasattr: false when reading the field is undefined or throws. */
export function has(obj: object, name: string): boolean {
  try {
    return (obj as Record<string, unknown>)[name] !== undefined;
  } catch {
    return false;
  }
}

export class TestRetry extends Error {
  override name = "TestRetry";
}

export class ResumeFromHere extends Error {
  override name = "ResumeFromHere";
  constructor() {
    super("This is not an error. Testing resume...");
  }
}

export const isResumed = () => current.originRunId !== undefined && current.originRunId !== null;
