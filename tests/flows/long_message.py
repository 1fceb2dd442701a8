"""A step whose exception message is thousands of characters long, as pandas' KeyError
listing every missing column is: the window must not let it take the room."""
from flowdeck import FlowSpec, step


class LongMessageFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.validate_schema)

    @step
    def validate_schema(self):
        columns = [f"feature_column_number_{i}_with_suffix" for i in range(300)]
        raise KeyError(f"None of {columns} are in the [columns]")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LongMessageFlow()
