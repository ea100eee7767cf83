# The bigartifact workload (examples/bigartifact.ts) as a Metaflow flow, run by bench/bigartifact.ts
# with Metaflow from its public source, side by side with tsflow.
from metaflow import FlowSpec, Parameter, step


class BigArtifactFlow(FlowSpec):
    mb = Parameter("mb", default=100, help="size of the byte array in MB")

    @step
    def start(self):
        data = bytearray(self.mb * 1024 * 1024)
        for i in range(0, len(data), 4096):
            data[i] = i % 251
        self.bytes = data
        self.numbers = [i * 0.5 for i in range(1_000_000)]
        self.next(self.use)

    @step
    def use(self):
        total = 0
        for i in range(0, len(self.bytes), 4096):
            total += self.bytes[i]
        self.checksum = total + self.numbers[-1]
        self.next(self.end)

    @step
    def end(self):
        print("%d bytes and %d numbers, checksum %s" % (len(self.bytes), len(self.numbers), self.checksum))


if __name__ == "__main__":
    BigArtifactFlow()
