"""Every transition kind in one flow: a static split, nested foreach, retry and catch."""
import time

from flowdeck import FlowSpec, Parameter, catch, current, retry, step


class FeatureTourFlow(FlowSpec):
    """Split into two branches, fan out over regions and days, join everything."""

    days = Parameter("days", default=4, help="days per region")

    @step
    def start(self):
        """Pick the regions to process."""
        self.regions = ["north", "south", "east"]
        self.next(self.load_prices, self.load_weather)

    @step
    def load_prices(self):
        self.source = "prices"
        self.next(self.merge_sources)

    @retry(times=2)
    @step
    def load_weather(self):
        """Flaky on the first attempt, like a real network call."""
        if current.retry_count == 0:
            raise ConnectionError("weather service timed out")
        self.source = "weather"
        self.next(self.merge_sources)

    @step
    def merge_sources(self, inputs):
        self.sources = sorted(i.source for i in inputs)
        self.merge_artifacts(inputs, exclude=["source"])
        self.next(self.fan_out)

    @step
    def fan_out(self):
        self.next(self.per_region, foreach="regions")

    @step
    def per_region(self):
        self.region = self.input
        self.day_list = list(range(self.days))
        self.next(self.per_day, foreach="day_list")

    @catch(var="problem")
    @step
    def per_day(self):
        time.sleep(0.05)
        self.value = len(self.region) * (self.input + 1)
        self.next(self.region_total)

    @step
    def region_total(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.merge_artifacts(inputs, include=["region"])
        self.next(self.all_regions)

    @step
    def all_regions(self, inputs):
        self.totals = {i.region: i.total for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        print("totals", self.totals)


if __name__ == "__main__":
    FeatureTourFlow().run()
