/**
 * Large data as a normal value: a 100 MB byte array and a million numbers pass between steps
 * as artifacts, stored once, never through JSON.
 *   npx tsflow run examples/bigartifact.ts --mb 100
 */
import { FlowSpec, Parameter, step } from "tsflow";

export default class BigArtifactFlow extends FlowSpec {
  mb = Parameter("mb", { default: 100, help: "size of the byte array in MB" });

  bytes = new Uint8Array(0);
  numbers: number[] = [];
  checksum = 0;

  @step start() {
    this.bytes = new Uint8Array(this.mb * 1024 * 1024);
    for (let i = 0; i < this.bytes.length; i += 4096) this.bytes[i] = i % 251;
    this.numbers = Array.from({ length: 1_000_000 }, (_, i) => i * 0.5);
    this.next(this.use);
  }

  @step use() {
    let sum = 0;
    for (let i = 0; i < this.bytes.length; i += 4096) sum += this.bytes[i]!;
    this.checksum = sum + this.numbers[this.numbers.length - 1]!;
    this.next(this.end);
  }

  @step end() {
    console.log(`${this.bytes.length} bytes and ${this.numbers.length} numbers, checksum ${this.checksum}`);
  }
}
