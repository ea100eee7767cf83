/**
 * A card fragment → one self-contained HTML document: inline CSS, the card's HTML, then the
 * vega bundles when it has charts and a small runtime (table paging, chart drawing, live
 * updates from the viewer, its height for the viewer's frame) — scripts last, so text and
 * tables are parsed before ~830 KB of script are compiled. It renders offline from a file.
 *
 * Its Content-Security-Policy allows nothing from any network (`default-src 'none'`, images
 * only as data: URLs, no connections); the viewer also serves it with `sandbox allow-scripts`
 * and shows it in a sandboxed frame, so a script in a card runs in an opaque origin: it cannot
 * read the viewer's pages (`parent.document`) or fetch the viewer's API.
 */
import type { CardData } from "../core/cards.ts";
import { esc, renderCard } from "./render.ts";
import { vegaScriptTags } from "./vega.ts";

/**
 * The card's policy. Scripts are inline (the runtime, the vega bundles, a plugin's own);
 * `'unsafe-eval'` because vega compiles its expressions with `new Function`. Both stay inside
 * the sandbox, with no network to reach.
 */
export const CARD_CSP = "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'";

/** Headers the viewer serves a card with: its own CSP, sandboxed, framable by the viewer only. */
export const CARD_HEADERS: Record<string, string> = {
  "Content-Security-Policy": `${CARD_CSP}; frame-ancestors 'self'; sandbox allow-scripts`,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "SAMEORIGIN",
};

export const CARD_CSS = `
:root{--ok:#2e9d57;--fail:#d0453a;--run:#2f6fd6;--fg:#1d232b;--mute:#66707c;--line:#dde1e6}
*{box-sizing:border-box}body{margin:0;padding:14px 16px;font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;color:var(--fg);background:#fff}
h1{font-size:19px;margin:2px 0}h2{font-size:15px;margin:18px 0 6px}.mute{color:var(--mute)}
table{border-collapse:collapse;border:1px solid var(--line);margin:4px 0}th,td{padding:3px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}td .num{font-variant-numeric:tabular-nums}
pre{background:#11161c;color:#e3e8ee;padding:8px;overflow:auto;max-height:420px;white-space:pre-wrap;word-break:break-all}
.tf-c{margin:10px 0}.tf-st{display:inline-block;padding:0 8px;border-radius:9px;color:#fff;font-size:12px;vertical-align:middle}
.tf-succeeded{background:var(--ok)}.tf-failed{background:var(--fail)}.tf-running{background:var(--run)}
.tf-error{border-left:4px solid var(--fail);background:#fff4f3;padding:6px 10px;margin:8px 0}.tf-error pre{color:#ffb4ab}
.tf-progress{display:flex;gap:10px;align-items:center}.tf-bar{flex:1;max-width:520px;height:14px;background:#e6ebf2;border-radius:7px;overflow:hidden}
.tf-bar div{height:100%;background:var(--run);transition:width .3s}.tf-pct{font-variant-numeric:tabular-nums;color:var(--mute)}
.tf-image img{max-width:100%;border:1px solid var(--line)}figure{margin:6px 0}figcaption{color:var(--mute);font-size:12px}
.tf-pager{display:flex;gap:10px;align-items:center;margin:4px 0}.tf-graph svg{max-width:100%;height:auto}svg text{font:12px system-ui,sans-serif}svg .lbl{fill:#fff}
.tf-art{margin:10px 0;padding:6px 0;border-top:1px solid var(--line)}details{margin-left:14px}summary{cursor:pointer}.k{color:#7a3e9d}.s{color:#2e7d32}.n{color:#1565c0}
.tf-kv td:first-child{color:var(--mute)}.tf-components{margin:8px 0 4px}.tf-md img{max-width:100%}
`;

/**
 * The runtime, inline in every card. Messages it accepts come from its parent only (the
 * viewer), and only replace the card's own content; it posts back nothing but its height.
 */
export const CARD_JS = `
(function(){
var root=document.getElementById("tf-card");
function size(){if(window.parent!==window)window.parent.postMessage({tsflowCard:"height",height:Math.ceil(document.documentElement.scrollHeight)},"*")}
function charts(){
var els=root.querySelectorAll(".tf-chart:not([data-done])"),jobs=[];
for(var i=0;i<els.length;i++)(function(el){el.setAttribute("data-done","1");var vis=el.querySelector(".tf-vis"),spec;
try{spec=JSON.parse(el.querySelector("script.tf-spec").textContent)}catch(e){vis.textContent="chart: invalid specification";return}
if(typeof vegaEmbed!=="function"){vis.textContent="this document has no chart scripts";return}
jobs.push(vegaEmbed(vis,spec,{actions:false,renderer:el.getAttribute("data-renderer")||"svg"}).catch(function(e){vis.className+=" tf-error";vis.textContent="chart error: "+e.message}))})(els[i]);
return Promise.all(jobs)}
function esc(s){return String(s).replace(/[&<>"']/g,function(c){return "&#"+c.charCodeAt(0)+";"})}
function row(r){var h="<tr>";for(var i=0;i<r.length;i++){var c=r[i];h+=c!==null&&typeof c==="object"?(typeof c.h==="string"?"<td>"+c.h+"</td>":'<td><span class="num">'+esc(c.n)+"</span></td>"):"<td>"+esc(c)+"</td>"}return h+"</tr>"}
function page(t,delta){var rows=t._rows,n=+t.getAttribute("data-page-size"),last=Math.max(0,Math.ceil(rows.length/n)-1);
t._page=Math.min(last,Math.max(0,(t._page||0)+delta));var a=t._page*n;
t.querySelector("tbody").innerHTML=rows.slice(a,a+n).map(row).join("");
t.querySelector(".tf-pos").textContent="rows "+(a+1)+"\\u2013"+Math.min(a+n,rows.length)+" of "+rows.length;charts();size()}
function tables(){var ts=root.querySelectorAll(".tf-table[data-page-size]");for(var i=0;i<ts.length;i++){var t=ts[i];
try{t._rows=JSON.parse(t.querySelector("script.tf-rows").textContent)}catch(e){continue}t._page=0}}
root.addEventListener("click",function(e){var b=e.target.closest&&e.target.closest("[data-tf-go]");if(!b)return;var t=b.closest(".tf-table");if(t&&t._rows)page(t,+b.getAttribute("data-tf-go"))});
function init(){tables();charts().then(function(){document.body.setAttribute("data-rendered",String(Date.now()));size()});size()}
window.addEventListener("message",function(e){if(e.source!==window.parent||window.parent===window||!e.data||e.data.tsflowCard!=="update"||typeof e.data.html!=="string")return;
root.innerHTML=e.data.html;document.body.setAttribute("data-version",String(e.data.version||""));init()});
window.addEventListener("load",size);if(window.ResizeObserver)new ResizeObserver(size).observe(document.body);
init()})();
`;

export interface DocumentOptions {
  title: string;
  /** Inline the vega bundles (the fragment has charts). */
  vega: boolean;
  /** Set on the body, so the viewer can tell which version a frame shows. */
  version?: string;
}

/** A self-contained HTML document around a card fragment. */
export async function cardDocument(fragment: string, options: DocumentOptions): Promise<string> {
  const scripts = options.vega ? await vegaScriptTags() : "";
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${esc(CARD_CSP)}"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer">
<title>${esc(options.title)}</title><style>${CARD_CSS}</style></head><body${options.version ? ` data-version="${esc(options.version)}"` : ""}><main id="tf-card">${fragment}</main>
${scripts}<script>${CARD_JS}</script></body></html>`;
}

/** Card data → a self-contained HTML document (for notebooks and files). */
export async function renderCardDocument(card: CardData, title = `${card.task.pathspec} · ${card.id}`): Promise<string> {
  const { html, vega } = await renderCard(card);
  return cardDocument(html, { title, vega });
}

/** A Vega-Lite spec → a self-contained HTML document drawing it offline (for notebooks). */
export async function vegaLiteDocument(spec: Record<string, unknown>, title = "chart"): Promise<string> {
  const { Chart } = await import("../core/cards.ts");
  const data = new Chart(spec).toData();
  const r = await renderCard({
    version: 1,
    id: "chart",
    type: "blank",
    options: {},
    components: [data],
    final: true,
    renderedAt: 0,
    task: { flow: "", runId: "", step: "", taskId: "", attempt: 0, pathspec: "", status: "succeeded", startedAt: 0, parents: [], foreach: [], parameters: {}, artifacts: [] },
  });
  return cardDocument(r.html, { title, vega: r.vega });
}
