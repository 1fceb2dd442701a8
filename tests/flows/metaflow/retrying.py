"""`flaky` fails on its first attempt and succeeds on the retry (@retry)."""

from metaflow import FlowSpec, current, retry, step


class MfRetryFlow(FlowSpec):

    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=2, minutes_between_retries=0)
    @step
    def flaky(self):
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails")
        self.attempts = current.retry_count + 1
        self.next(self.end)

    @step
    def end(self):
        print("took", self.attempts, "attempts")


if __name__ == "__main__":
    MfRetryFlow()
