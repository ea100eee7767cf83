/**
 * The viewer's card routes through `app.request()` (no server): a card is served with its own
 * sandboxing policy, the task page frames it sandboxed, the live fragment is JSON, and the
 * routes sit behind the viewer's access token like every other.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { card, current, FlowSpec, Markdown, runFlow, step } from "../../mod.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { tempStore } from "../_helpers.ts";

class RouteCardsFlow extends FlowSpec {
  @card({ id: "report", type: "blank" })
  @step
  start() {
    current.card.append(new Markdown("# Report <script>x()</script>"));
    this.next(this.end);
  }
  @step
  end() {}
}

describe("card routes", () => {
  let root: string;
  let runId: string;
  const path = () => `RouteCardsFlow/${runId}/start/1`;
  beforeAll(async () => {
    root = tempStore();
    const res = await runFlow(RouteCardsFlow, { datastore: root, executor: "inline" });
    expect(res.successful, res.error?.message).toBe(true);
    runId = res.runId;
  });

  it("serves a card with its own sandboxing policy, framable by the viewer only", async () => {
    const app = createViewerApp({ store: fsDatastore({ root }), host: nodeHost() });
    const res = await app.request(`/cards/${path()}/report?attempt=0`);
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toContain("sandbox allow-scripts");
    expect(csp).not.toContain("allow-same-origin");
    expect(csp).toContain("connect-src 'none'");
    expect(csp).toContain("frame-ancestors 'self'");
    expect(res.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    const html = await res.text();
    expect(html).toContain("<h1>Report &lt;script&gt;x()&lt;/script&gt;</h1>");

    const page = await app.request(`/runs/${path()}`);
    expect(page.headers.get("content-security-policy")).toContain("frame-src 'self'");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    const body = await page.text();
    expect(body).toMatch(/<iframe class="cardframe" sandbox="allow-scripts" src="\/cards\/RouteCardsFlow\/[^"]+\/start\/1\/report\?attempt=0"/);

    const live = await app.request(`/api/cards/${path()}/report?attempt=0`);
    expect(live.status).toBe(200);
    expect(await live.json()).toMatchObject({ id: "report", final: true, vega: false, html: expect.stringContaining("<h1>Report") });
  });

  it("answers 400 for a bad card id or attempt and 404 for a missing card", async () => {
    const app = createViewerApp({ store: fsDatastore({ root }), host: nodeHost() });
    expect((await app.request(`/cards/${path()}/bad..id`)).status).toBe(400);
    expect((await app.request(`/cards/${path()}/report?attempt=x`)).status).toBe(400);
    expect((await app.request(`/cards/${path()}/nope`)).status).toBe(404);
    expect((await app.request(`/cards/RouteCardsFlow/${runId}/end/2/report`)).status).toBe(404);
  });

  it("requires the viewer's access token like every route", async () => {
    const app = createViewerApp({ store: fsDatastore({ root }), host: nodeHost(), token: "s3cret-token-for-the-card-test" });
    const denied = await app.request(`/cards/${path()}/report`);
    expect(denied.status).toBeGreaterThanOrEqual(401);
    expect(denied.status).toBeLessThan(404);
    expect(await denied.text()).not.toContain("Report");
    const ok = await app.request(`/cards/${path()}/report?token=s3cret-token-for-the-card-test`);
    expect([200, 302, 303]).toContain(ok.status);
  });
});
