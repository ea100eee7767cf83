/**
 * The vega bundles as strings, for the standalone binary (it has no node_modules): cli/compile.ts
 * imports this lazily, so the ~830 KB are only evaluated when a card with a chart is built.
 */
// @ts-expect-error: a JS file imported as text (Bun and esbuild support it; TypeScript has no type for it)
import vega from "../node_modules/vega/build/vega.min.js" with { type: "text" };
// @ts-expect-error: as above
import vegaLite from "../node_modules/vega-lite/build/vega-lite.min.js" with { type: "text" };
// @ts-expect-error: as above
import vegaEmbed from "../node_modules/vega-embed/build/vega-embed.min.js" with { type: "text" };

const bundles: string[] = [vega as string, vegaLite as string, vegaEmbed as string];
export default bundles;
