/**
 * `tsflow/testing` as a plugin author gets it: the built bundle (not the sources) runs the
 * datastore conformance suite against a third-party store, here an unstorage memory driver.
 */
import { createStorage } from "unstorage";
import memoryDriver from "unstorage/drivers/memory";
import { describe, expect, it } from "vitest";
// @ts-expect-error the bundle has no declarations next to it; its types are dist/types/testing.d.ts
import * as testing from "../../dist/testing.mjs";
import unstorageDatastore from "../../plugins/datastores/unstorage.ts";

describe("tsflow/testing exports", () => {
  it("has both suites and the library", () => {
    expect(typeof testing.datastoreSuite).toBe("function");
    expect(typeof testing.executorSuite).toBe("function");
    expect(typeof testing.runFlow).toBe("function");
    expect(typeof testing.FlowSpec).toBe("function");
  });
});

void createStorage;
testing.datastoreSuite("third-party store through tsflow/testing", async () => ({ store: unstorageDatastore({ driver: memoryDriver(), name: "third-party" }) }), {
  largeBytes: 4 * 1024 * 1024,
});
