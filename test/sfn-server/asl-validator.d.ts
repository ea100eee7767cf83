// asl-validator 4 ships JavaScript only; the part tests use.
declare module "asl-validator" {
  interface Result {
    isValid: boolean;
    errors: unknown[];
    errorsText(separator?: string): string;
  }
  export default function aslValidator(definition: unknown, options?: Record<string, unknown>): Result;
}
