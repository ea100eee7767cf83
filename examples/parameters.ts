/**
 * Typed parameters, validated before anything runs, and a file stored with the run.
 *   npx tsflow run examples/parameters.ts --alpha 0.5 --mode fast --model '{"layers":[4,2]}'
 */
import { current, FlowSpec, IncludeFile, Parameter, step } from "tsflow";

export default class ParametersFlow extends FlowSpec {
  alpha = Parameter("alpha", { default: 0.01, help: "learning rate" });
  epochs = Parameter("epochs", { default: 2, help: "passes over the data" });
  mode = Parameter("mode", { default: "careful", choices: ["careful", "fast"], help: "how to train" });
  verbose = Parameter("verbose", { default: false, help: "print more" });
  model = Parameter("model", { type: "json", default: { layers: [8, 4] } as { layers: number[] }, help: "model shape (JSON)" });
  notes = IncludeFile("notes", { default: new URL("./data/notes.txt", import.meta.url).pathname, help: "notes stored with the run" });

  summary = "";

  @step start() {
    console.log(`run ${current.runId} by ${current.username}: alpha=${this.alpha} epochs=${this.epochs} mode=${this.mode}`);
    this.summary = `${this.mode} training, ${this.model.layers.length} layers, notes: ${this.notes.trim()}`;
    this.next(this.end);
  }

  @step end() {
    if (this.verbose) console.log(`model: ${JSON.stringify(this.model)}`);
    console.log(this.summary);
  }
}
