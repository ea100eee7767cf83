/** Ten chained steps, each adding one to a counter: the per-step overhead benchmark. */
import { FlowSpec, step } from "tsflow";

export default class Linear10Flow extends FlowSpec {
  count = 0;

  @step start() {
    this.count = 1;
    this.next(this.s2);
  }
  @step s2() {
    this.count += 1;
    this.next(this.s3);
  }
  @step s3() {
    this.count += 1;
    this.next(this.s4);
  }
  @step s4() {
    this.count += 1;
    this.next(this.s5);
  }
  @step s5() {
    this.count += 1;
    this.next(this.s6);
  }
  @step s6() {
    this.count += 1;
    this.next(this.s7);
  }
  @step s7() {
    this.count += 1;
    this.next(this.s8);
  }
  @step s8() {
    this.count += 1;
    this.next(this.s9);
  }
  @step s9() {
    this.count += 1;
    this.next(this.end);
  }
  @step end() {
    console.log(`count ${this.count + 1}`);
  }
}
