/**
 * Where things live in a datastore. One place, so the runtime, the client and the viewer
 * agree, and a newcomer can read the whole layout here:
 *
 *   blobs/<h[0:2]>/<hash>                         artifact bytes, content-addressed, immutable (none
 *                                                  for a tiny value: its reference in done.json
 *                                                  holds it, `inline`; core/artifacts.ts)
 *   flows/<Flow>/runs/<run>/run.json              run metadata (status, params, tags, graph)
 *   flows/<Flow>/runs/<run>/heartbeat             touched while the orchestrator lives
 *   flows/<Flow>/runs/<run>/index.json            the run index's manifest, written as the run ends
 *   flows/<Flow>/runs/<run>/index/<n>.json        its parts: every task's records (see _tasks.ts)
 *   flows/<Flow>/runs/<run>/tasks/<step>/<task>/task.json        parents, foreach position; `start`:
 *                                                  the first attempt's start, when the task wrote it.
 *                                                  None for a task that recorded itself and
 *                                                  succeeded quickly: its done.json has this `doc`
 *   flows/<Flow>/runs/<run>/tasks/<step>/<task>/<attempt>/start.json   attempt started (not for an
 *                                                  attempt task.json's `start` records)
 *   flows/<Flow>/runs/<run>/tasks/<step>/<task>/<attempt>/stdout/<n>     log chunks (8 digits, from
 *                                                  00000001), appended while running; stderr/ too
 *   flows/<Flow>/runs/<run>/tasks/<step>/<task>/<attempt>/stdout|stderr   a whole log (runs stored
 *                                                  before chunked logs)
 *   flows/<Flow>/runs/<run>/tasks/<step>/<task>/<attempt>/result.json  what the attempt produced
 *                                                  (none for a success that wrote done.json itself)
 *   flows/<Flow>/runs/<run>/tasks/<step>/<task>/<attempt>/cards/<id>.json  a card (blobs: data, HTML)
 *   flows/<Flow>/runs/<run>/tasks/<step>/<task>/done.json        success marker, written last: the
 *                                                  successful attempt's result and number (its
 *                                                  artifact references, tiny values inline; and
 *                                                  the task's `doc`, when it recorded itself)
 *   flows/<Flow>/tags/<run>/<time>-<rand>.json    a change of the run's tags (see _tags.ts)
 *   flows/<Flow>/bytime/<t:4>/<t:7>/<run>          the flow's runs by creation time (t: 13-digit ms;
 *                                                  empty keys): newest first in a few small
 *                                                  listings, however many runs (see _status.ts)
 *   packages/<hash>                               code packages for remote executors
 *   gc/<id>.mark|sweep|done                       a gc at work (or over): see _sweeps.ts
 */
/** Where every blob's key starts. */
export const BLOBS_PREFIX = "blobs/";
export const blobKey = (hash: string) => `${BLOBS_PREFIX}${hash.slice(0, 2)}/${hash}`;
export const flowsPrefix = () => "flows/";
export const runsPrefix = (flow: string) => `flows/${flow}/runs/`;
export const runPrefix = (flow: string, run: string) => `flows/${flow}/runs/${run}/`;
export const runKey = (flow: string, run: string) => `flows/${flow}/runs/${run}/run.json`;
export const runIndexKey = (flow: string, run: string) => `flows/${flow}/runs/${run}/index.json`;
export const runIndexPartKey = (flow: string, run: string, part: number) => `flows/${flow}/runs/${run}/index/${part}.json`;
export const heartbeatKey = (flow: string, run: string) => `flows/${flow}/runs/${run}/heartbeat`;
export const stepsPrefix = (flow: string, run: string) => `flows/${flow}/runs/${run}/tasks/`;
export const stepPrefix = (flow: string, run: string, step: string) => `flows/${flow}/runs/${run}/tasks/${step}/`;
export const taskPrefix = (flow: string, run: string, step: string, task: string) => `flows/${flow}/runs/${run}/tasks/${step}/${task}/`;
export const taskKey = (flow: string, run: string, step: string, task: string) => `${taskPrefix(flow, run, step, task)}task.json`;
export const doneKey = (flow: string, run: string, step: string, task: string) => `${taskPrefix(flow, run, step, task)}done.json`;
export const attemptKey = (flow: string, run: string, step: string, task: string, attempt: number, file: "start.json" | "result.json" | "stdout" | "stderr") =>
  `${taskPrefix(flow, run, step, task)}${attempt}/${file}`;
export const cardsPrefix = (flow: string, run: string, step: string, task: string, attempt: number) => `${taskPrefix(flow, run, step, task)}${attempt}/cards/`;
export const cardKey = (flow: string, run: string, step: string, task: string, attempt: number, id: string) => `${cardsPrefix(flow, run, step, task, attempt)}${id}.json`;
/** The directory of one attempt's log chunks (see core/_logs.ts). */
export const logPrefix = (flow: string, run: string, step: string, task: string, attempt: number, stream: "stdout" | "stderr") => `${taskPrefix(flow, run, step, task)}${attempt}/${stream}/`;
export const logChunkKey = (flow: string, run: string, step: string, task: string, attempt: number, stream: "stdout" | "stderr", seq: number) =>
  `${logPrefix(flow, run, step, task, attempt, stream)}${String(seq).padStart(8, "0")}`;
export const packageKey = (hash: string) => `packages/${hash}`;
export const tagsPrefix = (flow: string, run: string) => `flows/${flow}/tags/${run}/`;
export const tagChangeKey = (flow: string, run: string, id: string) => `flows/${flow}/tags/${run}/${id}.json`;


/** The flow's time index of runs (see `runTimeKey`). */
export const runsByTimePrefix = (flow: string) => `flows/${flow}/bytime/`;
const TIME_ID = /^(\d{13})-/;
/**
 * A run's entry in its flow's time index: `bytime/<t:4>/<t:7>/<leaf>`, t the 13-digit ms of the
 * run's creation (two levels of about 11.6 days and 16.7 minutes). A run id starts with that
 * time (core/runtime.ts `newRunId`) and is its own leaf; any other id (a scheduled Step Functions
 * execution's name) is filed under the run's `createdAt` as `<t>-=<id>` (see `runIdOfTimeLeaf`).
 */
export const runTimeKey = (flow: string, run: string, createdAt: number) => {
  const t = TIME_ID.exec(run)?.[1] ?? String(Math.max(0, Math.floor(createdAt))).padStart(13, "0").slice(-13);
  const leaf = TIME_ID.test(run) ? run : `${t}-=${run}`;
  return `${runsByTimePrefix(flow)}${t.slice(0, 4)}/${t.slice(0, 7)}/${leaf}`;
};
/** The run id a time index leaf names. */
export const runIdOfTimeLeaf = (leaf: string) => (/^\d{13}-=/.test(leaf) ? leaf.slice(15) : leaf);
