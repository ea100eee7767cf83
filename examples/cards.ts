/**
 * Cards: a foreach trains toy models (linear regression by gradient descent, one learning rate
 * per task) on generated data. Each task's card shows its loss curve and a table of metrics,
 * with a progress bar that moves while it trains; the join's card compares the models.
 *
 *   npx tsflow run examples/cards.ts
 *   npx tsflow card view CardsFlow/<run>/train/<task>      # or open the viewer: npx tsflow view
 */
import { ArtifactValue, Chart, card, current, FlowSpec, type Inputs, Markdown, Parameter, ProgressBar, step, Table } from "tsflow";
import leaderboard from "./plugins/leaderboard-card.ts";

export default class CardsFlow extends FlowSpec {
  epochs = Parameter("epochs", { default: 60, help: "gradient-descent epochs per model" });
  points = Parameter("points", { default: 200, help: "size of the generated data set" });
  /** Milliseconds to pause per epoch, so the live progress bar can be watched. */
  pause = Parameter("pause", { default: 10 });

  rates: number[] = [];
  data: { x: number; y: number }[] = [];
  rate = 0;
  losses: number[] = [];
  model: { w: number; b: number } = { w: 0, b: 0 };
  results: { rate: number; loss: number; w: number; b: number }[] = [];

  @card()
  @step
  start() {
    // y = 3x + 2 + noise, from a seeded generator so runs compare.
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    this.data = Array.from({ length: this.points }, (_, i) => {
      const x = i / this.points;
      return { x, y: 3 * x + 2 + rand() * 0.3 };
    });
    this.rates = [0.02, 0.1, 0.3, 0.6];
    current.card.append(new Markdown(`# Toy regression\nTraining **${this.rates.length}** models on ${this.points} points of \`y = 3x + 2 + noise\`.`));
    current.card.append(new Chart({ $schema: "https://vega.github.io/schema/vega-lite/v6.json", title: "training data", width: 360, height: 200, data: { values: this.data }, mark: { type: "point", size: 12 }, encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } } }));
    this.next(this.train, { foreach: "rates" });
  }

  @card({ type: "blank", id: "training" })
  @card()
  @step
  async train() {
    this.rate = this.input as number;
    const progress = new ProgressBar({ max: this.epochs, label: `training with learning rate ${this.rate}` });
    const live = current.card.get("training");
    live.append(new Markdown(`## Learning rate ${this.rate}`)).append(progress);
    live.refresh();
    let w = 0;
    let b = 0;
    const n = this.data.length;
    this.losses = [];
    for (let epoch = 1; epoch <= this.epochs; epoch++) {
      let gw = 0;
      let gb = 0;
      let loss = 0;
      for (const { x, y } of this.data) {
        const err = w * x + b - y;
        gw += (2 * err * x) / n;
        gb += (2 * err) / n;
        loss += (err * err) / n;
      }
      w -= this.rate * gw;
      b -= this.rate * gb;
      this.losses.push(Number.isFinite(loss) ? loss : Number.MAX_VALUE);
      progress.update(epoch);
      live.refresh(); // rate-limited: at most one snapshot per second reaches the datastore
      if (this.pause > 0) await new Promise((r) => setTimeout(r, this.pause));
    }
    this.model = { w, b };
    const final = this.losses.at(-1)!;
    live.append(new Markdown(`Done: loss **${final.toFixed(4)}**.`));
    current.card.get("default").extend([
      new Chart({
        title: `loss, learning rate ${this.rate}`,
        width: 420,
        height: 220,
        data: { values: this.losses.map((loss, i) => ({ epoch: i + 1, loss })) },
        mark: "line",
        encoding: { x: { field: "epoch", type: "quantitative" }, y: { field: "loss", type: "quantitative", scale: { type: "log" } } },
      }),
      new Table(
        [
          { metric: "learning rate", value: this.rate },
          { metric: "final loss (MSE)", value: final },
          { metric: "weight w (true 3)", value: w },
          { metric: "bias b (true 2)", value: b },
        ],
        { label: "metrics" },
      ),
    ]);
    this.next(this.compare);
  }

  @card()
  @card({ type: leaderboard, id: "leaderboard", options: { artifact: "results", metric: "loss" } })
  @step
  compare(inputs: Inputs<CardsFlow>) {
    this.results = [...inputs].map((i) => ({ rate: i.rate, loss: i.losses.at(-1)!, w: i.model.w, b: i.model.b }));
    const curves = [...inputs].flatMap((i) => i.losses.map((loss, e) => ({ epoch: e + 1, loss, rate: String(i.rate) })));
    const main = current.card.get("default");
    main.append(new Markdown("## Models compared"));
    main.append(
      new Chart({
        title: "loss by learning rate",
        width: 480,
        height: 260,
        data: { values: curves },
        mark: "line",
        encoding: { x: { field: "epoch", type: "quantitative" }, y: { field: "loss", type: "quantitative", scale: { type: "log" } }, color: { field: "rate", type: "nominal" } },
      }),
    );
    main.append(new Table(this.results, { headers: ["rate", "loss", "w", "b"] }));
    const best = this.results.reduce((a, b) => (b.loss < a.loss ? b : a));
    main.append(new ArtifactValue(best, { name: "best" }));
    this.next(this.end);
  }

  @step
  end() {
    const best = this.results.reduce((a, b) => (b.loss < a.loss ? b : a));
    console.log(`best learning rate ${best.rate}: loss ${best.loss.toFixed(4)}`);
  }
}
