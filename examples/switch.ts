/**
 * Choose a branch at run time: exactly one case runs, picked by the value of an artifact.
 * The `refine` step loops on itself until the condition says it is done.
 *   npx tsflow run examples/switch.ts --score 0.9
 */
import { FlowSpec, Parameter, step } from "tsflow";

export default class SwitchFlow extends FlowSpec {
  score = Parameter("score", { default: 0.4, help: "model score in [0, 1]" });

  route = "";
  decision = "";
  rounds = 0;
  again = "";

  @step start() {
    this.route = this.score >= 0.5 ? "high" : "low";
    this.next({ high: this.ship, low: this.refine }, { condition: "route" });
  }

  @step refine() {
    this.rounds += 1;
    this.again = this.rounds < 3 ? "yes" : "no";
    console.log(`refining, round ${this.rounds}`);
    this.next({ yes: this.refine, no: this.review }, { condition: "again" });
  }

  @step review() {
    this.decision = `reviewed after ${this.rounds} rounds`;
    this.next(this.end);
  }

  @step ship() {
    this.decision = "shipped";
    this.next(this.end);
  }

  @step end() {
    console.log(`decision: ${this.decision}`);
  }
}
