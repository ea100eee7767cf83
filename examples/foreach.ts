/**
 * Fan out over a list, one task per item, and fan back in.
 *   npx tsflow run examples/foreach.ts --n 100
 */
import { FlowSpec, type Inputs, Parameter, step } from "tsflow";

export default class ForeachFlow extends FlowSpec {
  n = Parameter("n", { default: 10, help: "number of items" });

  items: number[] = [];
  square = 0;
  total = 0;

  @step start() {
    this.items = Array.from({ length: this.n }, (_, i) => i);
    this.next(this.square_it, { foreach: "items" });
  }

  @step square_it() {
    this.square = this.input * this.input;
    this.next(this.join);
  }

  @step join(inputs: Inputs<ForeachFlow>) {
    this.total = [...inputs].reduce((sum, i) => sum + i.square, 0);
    this.next(this.end);
  }

  @step end() {
    console.log(`sum of squares of 0..${this.n - 1} = ${this.total}`);
  }
}
