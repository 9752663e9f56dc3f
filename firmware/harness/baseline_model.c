/* The empty model of the baseline build: same harness, board support and inputs, no network.
 * model flash/RAM = the real image's minus this one's. */
#include "model.h"

void mcus_model_run(const mcus_input_t *input, mcus_output_t *output)
{
    (void)input;
    for (int i = 0; i < MCUS_OUTPUT_LEN; i++) {
        output[i] = 0;
    }
}
