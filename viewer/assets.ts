/**
 * The viewer's only client-side assets, shipped as strings inside the code: no build step,
 * no CDN. Served as files (not inline) so the Content-Security-Policy can forbid inline script.
 */
export const CSS = `
:root{--ok:#2e9d57;--fail:#d0453a;--run:#2f6fd6;--pend:#9aa3ad;--bg:#f7f8fa;--fg:#1d232b;--mute:#66707c;--line:#dde1e6}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;background:var(--bg);color:var(--fg)}
header{background:#1d232b;color:#fff;padding:8px 20px;display:flex;gap:18px;align-items:center}
header a{color:#cfd8e3;text-decoration:none}header b{color:#fff}
main{padding:16px 20px;max-width:1400px}a{color:#2459b8}
h1{font-size:20px;margin:4px 0 12px}h3{font-size:13px;margin:10px 0 2px;color:var(--mute)}.logs pre{max-height:300px}h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line)}th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}.mute{color:var(--mute)}
.st{display:inline-block;padding:0 8px;border-radius:9px;color:#fff;font-size:12px}
.st-succeeded{background:var(--ok)}.st-failed,.st-abandoned{background:var(--fail)}.st-running{background:var(--run)}.st-pending{background:var(--pend)}
.tag{display:inline-block;background:#e6ebf2;border-radius:4px;padding:0 6px;margin:0 3px 2px 0;font-size:12px}
pre{background:#11161c;color:#e3e8ee;padding:10px;overflow:auto;max-height:480px;white-space:pre-wrap;word-break:break-all;margin:4px 0}
pre.err{color:#ffb4ab}.kv td:first-child{color:var(--mute)}
form.filters{display:flex;gap:8px;margin-bottom:10px;align-items:center}
.pager a,.pager span{margin-right:8px}.card{background:#fff;border:1px solid var(--line);padding:10px;margin:6px 0;overflow:auto}
svg text{font:12px system-ui,sans-serif}svg .lbl{fill:#fff}svg a:hover rect{stroke:#000}
details{margin-left:14px}summary{cursor:pointer}.k{color:#7a3e9d}.s{color:#2e7d32}.n{color:#1565c0}
.tabs a{margin-right:10px}.tabs a.on{font-weight:700;text-decoration:none;color:var(--fg)}
.hex{font-family:ui-monospace,monospace;font-size:12px}.preview img{max-width:600px;max-height:400px;border:1px solid var(--line)}
[data-href]{cursor:pointer}.top{display:grid;grid-template-columns:minmax(260px,380px) 1fr;gap:20px;align-items:start}h2.first{margin-top:0}
table.runs td:nth-child(-n+2){white-space:nowrap}.cardframe{display:block;width:100%;height:320px;border:0;border-top:1px solid var(--line);margin-top:6px;background:#fff}.top .card{display:flex;justify-content:center}svg.dag{max-width:100%;height:auto}svg.gantt{display:block;max-width:1000px}
`;

/** Live refresh: poll a tiny JSON fingerprint; when it changes, fetch the page and swap `<main>`. */
export const JS = `
(function(){
document.addEventListener("click",function(e){var t=e.target.closest&&e.target.closest("[data-href]");if(t)location.href=t.getAttribute("data-href")});
// Cards live in sandboxed frames; all they may tell this page is their height.
window.addEventListener("message",function(e){if(!e.data||e.data.tsflowCard!=="height")return;var fs=document.querySelectorAll("iframe.cardframe");
for(var i=0;i<fs.length;i++)if(fs[i].contentWindow===e.source){var h=Math.min(Math.max(+e.data.height||0,40),30000);fs[i].style.height=h+"px"}});
var m=document.querySelector('meta[name="tsflow-live"]');if(!m)return;
var url=m.getAttribute("content"),sig=m.getAttribute("data-sig");
function refreshCard(f){var u=f.getAttribute("data-live");if(!u){f.src=f.src;return}
fetch(u,{cache:"no-store"}).then(function(r){return r.json()}).then(function(j){
if(j.vega&&f.getAttribute("data-vega")!=="true"){f.setAttribute("data-vega","true");f.src=f.src;return}
f.contentWindow.postMessage({tsflowCard:"update",html:j.html,version:j.version},"*")}).catch(function(){})}
function updateBox(k,c){var f=k.querySelector("iframe.cardframe"),nf=c.querySelector("iframe.cardframe");if(!f||!nf){k.replaceWith(c);return}
while(k.firstChild&&k.firstChild!==f)k.removeChild(k.firstChild);while(f.nextSibling)k.removeChild(f.nextSibling);
[].slice.call(c.childNodes).forEach(function(x){if(x!==nf)k.insertBefore(x,f)});
if(nf.getAttribute("data-version")!==f.getAttribute("data-version")){f.setAttribute("data-version",nf.getAttribute("data-version")||"");refreshCard(f)}}
// Swaps <main> for the new one, except card frames: they stay (a moved frame would reload) and
// get the new card through postMessage.
function swap(o,n){var keep={},nb={};
[].slice.call(n.children).forEach(function(c){if(c.classList.contains("cardbox"))nb[c.id]=c});
[].slice.call(o.childNodes).forEach(function(c){if(c.classList&&c.classList.contains("cardbox")&&nb[c.id])keep[c.id]=c;else o.removeChild(c)});
var cur=null;[].slice.call(n.childNodes).forEach(function(c){var k=c.classList&&c.classList.contains("cardbox")?keep[c.id]:null;
if(k){updateBox(k,c);cur=k;return}o.insertBefore(c,cur?cur.nextSibling:o.firstChild);cur=c})}
function tick(){fetch(url,{cache:"no-store"}).then(function(r){return r.json()}).then(function(j){
if(j.sig===sig){if(j.live)setTimeout(tick,1000);return}
return fetch(location.href,{cache:"no-store"}).then(function(r){return r.text()}).then(function(h){
var d=new DOMParser().parseFromString(h,"text/html"),n=d.querySelector("main"),o=document.querySelector("main");
if(n&&o)swap(o,n);sig=j.sig;document.body.setAttribute("data-refreshed",String(Date.now()));if(j.live)setTimeout(tick,1000)})
}).catch(function(){setTimeout(tick,3000)})}
setTimeout(tick,1000)})();
`;
