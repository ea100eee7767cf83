/**
 * The seed example: two branches pick pets in parallel, a join compares them.
 *   npx tsflow run examples/pets.ts
 */
import { FlowSpec, type Inputs, Parameter, step } from "tsflow";

export default class PetsFlow extends FlowSpec {
  greeting = Parameter("greeting", { default: "hi", help: "what to say" });
  limit = Parameter("limit", { default: 3, help: "how many pets to keep per branch" });

  pets: string[] = [];

  @step start() {
    console.log(`${this.greeting}! Let's find some pets.`);
    this.next(this.a, this.b);
  }

  @step a() {
    this.pets = ["dogs", "cats", "budgies"].slice(0, this.limit);
    this.next(this.join);
  }

  @step b() {
    this.pets = ["lions", "wolves", "elephants"].slice(0, this.limit);
    this.next(this.join);
  }

  @step join(inputs: Inputs<PetsFlow>) {
    console.log(`Good pets (a) are ${inputs.a.pets.join(", ")}`);
    console.log(`Bad pets (b) are ${inputs.b.pets.join(", ")}`);
    this.pets = [...inputs.a.pets, ...inputs.b.pets];
    this.next(this.end);
  }

  @step end() {
    console.log(`total of ${this.pets.length} pets`);
  }
}
