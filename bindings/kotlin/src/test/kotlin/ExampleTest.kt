import org.junit.jupiter.api.Test

class ExampleTest {
    /** examples/kotlin/Example.kt compiles against the binding and runs to completion. */
    @Test
    fun exampleRuns() = example.main()
}
