/** One task whose card holds a 10,000-row table and a 10,000-point chart: the card open benchmark. */
import { card, Chart, current, FlowSpec, step, Table } from "tsflow";

export default class BigCardFlow extends FlowSpec {
  @card()
  @step
  start() {
    const rows = Array.from({ length: 10_000 }, (_, i) => ({ i, x: Math.sin(i / 100), y: Math.cos(i / 70), label: `row ${i}` }));
    current.card.append(new Table(rows, { label: "10,000 rows" }));
    current.card.append(
      new Chart({
        width: 600,
        height: 260,
        data: { values: rows.map((r) => ({ i: r.i, v: r.x + r.y })) },
        mark: { type: "point", size: 4 },
        encoding: { x: { field: "i", type: "quantitative" }, y: { field: "v", type: "quantitative" } },
      }),
    );
    this.next(this.end);
  }

  @step
  end() {}
}
