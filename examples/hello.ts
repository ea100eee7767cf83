/** The smallest flow: start → end. Used by the start-up benchmark. */
import { FlowSpec, step } from "tsflow";

export default class HelloFlow extends FlowSpec {
  message = "";

  @step start() {
    this.message = "hello from tsflow";
    this.next(this.end);
  }

  @step end() {
    console.log(this.message);
  }
}
