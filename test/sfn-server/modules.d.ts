// asl-validator 4 and @wmfs/statebox ship JavaScript only: the parts tests use.
// asl-validator:
declare module "asl-validator" {
  interface Result {
    isValid: boolean;
    errors: unknown[];
    errorsText(separator?: string): string;
  }
  export default function aslValidator(definition: unknown, options?: Record<string, unknown>): Result;
}

// @wmfs/statebox ships JavaScript only; the part tests use.
declare module "@wmfs/statebox" {
  export default class Statebox {
    constructor(options: Record<string, unknown>);
    ready: Promise<void>;
    createModuleResources(modules: Record<string, unknown>): void;
    createStateMachines(machines: Record<string, unknown>, env: Record<string, unknown>): Promise<void>;
    startExecution(input: unknown, stateMachine: string, options: Record<string, unknown>): Promise<unknown>;
  }
}
