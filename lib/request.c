/* request - the request model (see request.h). */
#include <string.h>

#include "request.h"

void request_init(struct request *req)
{
	memset(req, 0, sizeof(*req));
}
